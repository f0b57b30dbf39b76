package apikey

import (
	"context"
	"sync"
	"time"
)

// Last-used times: kept in memory at minute precision and written by a
// background flusher in one TouchLastUsed per round, so that a key used
// on every request costs at most one write a minute, never one per
// request. The flusher starts with the first valid key and stops at
// Close, which writes what is left.

// lastUsed is the keyring's state of last-used times, guarded by its mu
// (the channels apart).
type lastUsed struct {
	pending map[string]time.Time // minute not yet written, by id
	marked  map[string]time.Time // last minute marked, by id
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	err     error // of the last flush at Close
}

func (u *lastUsed) init() {
	u.pending, u.marked = map[string]time.Time{}, map[string]time.Time{}
	u.stop, u.done = make(chan struct{}), make(chan struct{})
}

// markUsed notes that the key with id was used at now.
func (k *Keyring) markUsed(id string, now time.Time) {
	minute := now.UTC().Truncate(time.Minute)
	k.mu.Lock()
	defer k.mu.Unlock()
	u := &k.used
	if u.closed || !u.marked[id].Before(minute) {
		return
	}
	u.marked[id], u.pending[id] = minute, minute
	if !u.started {
		u.started = true
		go k.flusher()
	}
}

// flusher writes the pending times every FlushEvery until Close.
func (k *Keyring) flusher() {
	defer close(k.used.done)
	t := time.NewTicker(k.opts.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-k.used.stop:
			return
		case <-t.C:
			_ = k.flush() // a failed write is kept and tried again
		}
	}
}

// flush writes the pending times in one TouchLastUsed. Only one runs at
// a time: the flusher's, or Close's once the flusher stopped. What could
// not be written is kept for the next round, unless a newer time for the
// same key was marked meanwhile.
func (k *Keyring) flush() error {
	minute := k.opts.Now().UTC().Truncate(time.Minute)
	k.mu.Lock()
	var batch map[string]time.Time
	if len(k.used.pending) > 0 {
		batch, k.used.pending = k.used.pending, map[string]time.Time{}
	}
	for id, m := range k.used.marked { // older minutes can no longer be marked again
		if m.Before(minute) {
			delete(k.used.marked, id)
		}
	}
	k.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), k.opts.Timeout)
	defer cancel()
	err := k.store.TouchLastUsed(ctx, batch)
	if err != nil {
		k.mu.Lock()
		for id, m := range batch {
			if cur, ok := k.used.pending[id]; !ok || cur.Before(m) {
				k.used.pending[id] = m
			}
		}
		k.mu.Unlock()
	}
	return err
}

// Close stops the flusher and writes the last-used times not yet
// written; no goroutine of the keyring outlives it. Keys verified after
// Close are still verified, their use no longer recorded. It returns the
// error of that last write; calling it again returns the same.
func (k *Keyring) Close() error {
	k.used.once.Do(func() {
		k.mu.Lock()
		k.used.closed = true
		started := k.used.started
		k.mu.Unlock()
		if started {
			close(k.used.stop)
			<-k.used.done
		}
		k.used.err = k.flush()
	})
	return k.used.err
}
