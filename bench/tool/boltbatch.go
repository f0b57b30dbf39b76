package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltBatch is the storage-PUT baseline: bbolt's own group commit. It opens
// a bbolt file (in bench/run's temp directory, so the same disk as the
// route's file) with the options the module's store uses (the defaults plus
// a lock timeout), fills the key space once, then has w goroutines call
// db.Batch with one Put of a value of the given size each, on keys taken
// round-robin over the same key space, for the given duration, with bbolt's
// default MaxBatchSize and MaxBatchDelay. Every Batch call returns only
// after its transaction is committed and fsync'd, as a PUT is acknowledged.
// It prints the completed puts per second.
func boltBatch(args []string) error {
	fs := flag.NewFlagSet("boltbatch", flag.ContinueOnError)
	path := fs.String("path", "", "bbolt file (created)")
	keys := fs.Int("keys", 10000, "key space")
	writers := fs.Int("w", 32, "concurrent writers")
	size := fs.Int("value", 300, "value size in bytes")
	dur := fs.Duration("d", 10*time.Second, "duration")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" || *keys < 1 || *writers < 1 || *size < 16 {
		return fmt.Errorf("want -path, -keys >= 1, -w >= 1, -value >= 16")
	}
	db, err := bolt.Open(*path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	bucket := []byte("profiles")
	value := func(i int64) []byte {
		v := make([]byte, *size)
		for j := range v {
			v[j] = 'x'
		}
		copy(v, fmt.Sprintf(`{"n":%d,"pad":"`, i))
		v[len(v)-2], v[len(v)-1] = '"', '}'
		return v
	}
	// the key space exists before the clock starts, as the route's
	// profiles do after priming
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		for i := range *keys {
			if err := b.Put(fmt.Appendf(nil, "u-%d", i), value(int64(i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	var next, done atomic.Int64
	var failed atomic.Pointer[error]
	stop := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range *writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				n := next.Add(1)
				k := fmt.Appendf(nil, "u-%d", n%int64(*keys))
				v := value(n)
				err := db.Batch(func(tx *bolt.Tx) error {
					return tx.Bucket(bucket).Put(k, v)
				})
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		return *err
	}
	fmt.Fprintf(os.Stderr, "boltbatch: %d puts from %d writers in %s\n", done.Load(), *writers, elapsed.Round(time.Millisecond))
	fmt.Printf("%.1f\n", float64(done.Load())/elapsed.Seconds())
	return nil
}
