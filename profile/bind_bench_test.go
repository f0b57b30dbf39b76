package profile

import (
	"testing"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jsonscan"
)

// BenchmarkBindUpdate is the bind of a PUT body: the UTF-8 and lone
// surrogate checks, then the decoder.
func BenchmarkBindUpdate(b *testing.B) {
	for _, c := range []struct{ name, body string }{
		{"plain", `{"userName":"alice.liddell","email":"alice.liddell@example.com","firstName":"Alice","lastName":"Liddell"}`},
		{"escaped", `{"userName":"alice\u002eliddell","email":"alice@example.com","firstName":"Al\u00efce \ud83d\ude00","lastName":"Liddell"}`},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.body)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, errs := BindUpdate(body); errs != nil {
					b.Fatal(errs)
				}
			}
		})
	}
}

// BenchmarkLoneSurrogate is the lone surrogate scan alone, on a PUT body.
func BenchmarkLoneSurrogate(b *testing.B) {
	body := []byte(`{"userName":"alice\u002eliddell","email":"alice@example.com","firstName":"Al\u00efce \ud83d\ude00","lastName":"Liddell"}`)
	b.ReportAllocs()
	for b.Loop() {
		if jsonscan.HasLoneSurrogate(body) {
			b.Fatal("lone surrogate")
		}
	}
}
