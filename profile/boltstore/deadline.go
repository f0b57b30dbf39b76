package boltstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Deadlines. bbolt ignores contexts and a transaction may wait for the
// writer lock (one writer at a time) or for a remap of the file (which
// waits for every read transaction). So Update and Import run their
// transaction in a goroutine and return when ctx is done, with an error
// that wraps both profile.ErrUnavailable (503 StorageUnavailable on the
// route) and ctx.Err() (Get, a read, waits for neither; see Get). The
// abandoned transaction finishes later on its own: a write whose transaction had not begun when
// the caller gave up is rolled back (nothing written); a write that had
// begun commits or not as a whole (bbolt transactions are atomic), so, as
// with a timeout in any database, a caller that got 503 may find its
// write committed. fn of an Update never runs after Update returned.

// call is one transaction run on behalf of a caller that may give up.
type call struct {
	mu        sync.Mutex // held while fn runs; taken to abandon
	abandoned bool
}

// begin is called first inside the transaction: it reports whether the
// caller still waits and, if so, keeps the call from being abandoned
// until end.
func (c *call) begin(ctx context.Context) error {
	c.mu.Lock()
	if c.abandoned {
		c.mu.Unlock()
		return unavailable(fmt.Errorf("the caller gave up: %w", context.Cause(ctx)))
	}
	return nil
}

func (c *call) end() { c.mu.Unlock() }

// run runs tx (a whole bbolt transaction, which calls c.begin and c.end
// around the caller's code) in a goroutine and waits for it or for ctx.
func run(ctx context.Context, tx func(c *call) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", profile.ErrUnavailable, err)
	}
	c := &call{}
	done := make(chan error, 1)
	go func() { done <- tx(c) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.mu.Lock() // waits for a running fn; after this none runs
		c.abandoned = true
		c.mu.Unlock()
		select {
		case err := <-done: // it finished meanwhile: its answer stands
			return err
		default:
			return fmt.Errorf("%w: %w", profile.ErrUnavailable, ctx.Err())
		}
	}
}
