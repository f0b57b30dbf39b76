package pgstore

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// BenchmarkPutRoundTrips measures PUTs of 10,000 profiles from parallel
// writers on the real server: as Update makes them (a compare-and-set
// statement, on the cached row when there is one), and as one locking
// transaction each (BEGIN, SELECT ... FOR UPDATE, the write, COMMIT),
// which Update falls back to and which every PUT was before. Run with
// -cpu to set the writers; compare the puts/s of the two.
func BenchmarkPutRoundTrips(b *testing.B) {
	dsn := pgtest.DSN(b)
	for _, mode := range []string{"compare-and-set", "locking-transaction"} {
		b.Run(mode, func(b *testing.B) {
			schema := fmt.Sprintf("wp_bench_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
			s, err := Open(context.Background(), dsn, Options{Schema: schema})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				_, _ = s.pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
				_ = s.Close()
			}()
			const users = 10_000
			set := func(cur profile.Profile, _ bool) (profile.Profile, bool, error) {
				cur.FirstName = fmt.Sprint("n", cur.Version)
				return cur, true, nil
			}
			for i := range users {
				if _, err := s.Update(context.Background(), fmt.Sprint("user", i), set); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					user := fmt.Sprint("user", next.Add(1)%users)
					var err error
					if mode == "compare-and-set" {
						_, err = s.Update(ctx, user, set)
					} else {
						err = s.inTx(ctx, s.pool, func(tx pgx.Tx) error {
							_, _, err := s.updateTx(ctx, tx, user, set)
							return err
						})
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "puts/s")
		})
	}
}
