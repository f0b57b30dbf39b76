package profile

import (
	"syscall"
	"testing"
	"time"
)

// normalizeBenchCases are the answers the upstream path sees most: a flat
// profile (the hot case), an envelope, ASP.NET problem details, and JSON
// that breaks off.
var normalizeBenchCases = []struct {
	name string
	r    LegacyResponse
}{
	{"flat-300", LegacyResponse{Status: 200, ContentType: "application/json; charset=utf-8", Body: []byte(
		`{"userId":"7f3c2a9e-41b8-4d2c-9a61-0c5e8b7d1f24","userName":"alice.liddell","email":"alice.liddell@example.com",` +
			`"firstName":"Alice","lastName":"Liddell","userType":1,"createdAt":"2021-03-14T09:26:53Z","updatedAt":"2024-11-02T17:45:10Z",` +
			`"isActive":true,"locale":"en-GB","timeZone":"Europe/London","department":"Research","phone":null}`)}},
	{"envelope", LegacyResponse{Status: 200, ContentType: "application/json; charset=utf-8", Body: []byte(
		`{"Data":{"UserId":"7f3c2a9e-41b8-4d2c-9a61-0c5e8b7d1f24","UserName":"alice.liddell","Email":"alice.liddell@example.com",` +
			`"FirstName":"Alice","LastName":"Liddell","UserType":1},"Errors":[],"Warnings":[],"Success":true}`)}},
	{"problem-400", LegacyResponse{Status: 400, ContentType: "application/problem+json; charset=utf-8", Body: []byte(
		`{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"One or more validation errors occurred.",` +
			`"status":400,"traceId":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00","errors":{"$.email":` +
			`["The Email field is not a valid e-mail address."],"UserName":["The field UserName must be a string with a maximum length of 64.",` +
			`"The UserName field is required."],"$.lastName":["The LastName field is required."]}}`)}},
	{"invalid", LegacyResponse{Status: 200, ContentType: "application/json", Body: []byte(
		`{"userId":"7f3c2a9e-41b8-4d2c-9a61-0c5e8b7d1f24","userName":"alice.liddell","email":"alice.liddell@example.com",` +
			`"firstName":"Alice","lastName":"Liddell","userType":1,"createdAt":"2021-03-14T09:26:53Z","updatedAt":`)}},
}

func processCPUTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNormalize measures Normalize beside the reference it replaced
// (normalize_reference_test.go). The machine this runs on is shared, so
// each case also runs both in alternating blocks and reports the ratios
// of wall and process CPU time (which includes the GC's share).
func BenchmarkNormalize(b *testing.B) {
	impls := []struct {
		name string
		fn   func(LegacyResponse) Normalized
	}{{"new", Normalize}, {"reference", refNormalize}}
	var sink Normalized
	for _, c := range normalizeBenchCases {
		b.Run(c.name, func(b *testing.B) {
			for _, impl := range impls {
				b.Run(impl.name, func(b *testing.B) {
					b.ReportAllocs()
					cpu := processCPUTime()
					for b.Loop() {
						sink = impl.fn(c.r)
					}
					b.ReportMetric(float64(processCPUTime()-cpu)/float64(b.N), "cpu-ns/op")
				})
			}
			b.Run("ratio", func(b *testing.B) {
				const block = 256
				var wall, cpu [2]time.Duration
				for b.Loop() {
					for i, impl := range impls {
						t, c0 := time.Now(), processCPUTime()
						for range block {
							sink = impl.fn(c.r)
						}
						wall[i] += time.Since(t)
						cpu[i] += processCPUTime() - c0
					}
				}
				b.ReportMetric(float64(wall[0])/float64(wall[1]), "new/ref-wall")
				b.ReportMetric(float64(cpu[0])/float64(cpu[1]), "new/ref-cpu")
			})
		})
	}
	_ = sink
}
