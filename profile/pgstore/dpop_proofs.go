package pgstore

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// DPoP proofs used on any node: the dpop_proofs table of the store's
// schema (migration 5), on the store's pool, with its timeouts and its
// errors. Each node spends a proof here after its own replay cache, so
// that a proof used on one node is refused on every other (RFC 9449
// §11.1); each node also prunes the rows whose proofs no node accepts any
// more.

// DPoPPruneInterval is how often a node deletes expired proofs, once it
// has used one, unless Options.DPoPPrune says otherwise; DPoPPruneBatch is the most rows one statement deletes, so
// that a backlog never holds many row locks or runs long.
const (
	DPoPPruneInterval = 30 * time.Second
	DPoPPruneBatch    = 1000
)

// pruneState is the store's background pruning of expired proofs.
type pruneState struct {
	mu      sync.Mutex
	started bool
	closed  bool
	stop    context.CancelFunc
	done    chan struct{}
}

// DPoPClockSkew is how long a proof's row outlives its expiry: the
// expiry is reckoned by the node's clock and the pruning by the
// database's, so a node whose clock is behind the database's by up to
// this still finds the row of a proof it would still accept.
const DPoPClockSkew = time.Minute

// UseDPoPProof records a used proof of the key jkt, by its replay key
// (the SHA-256 of thumbprint, htu and jti), until expires (and
// DPoPClockSkew more): fresh is true
// when no node had recorded it, false when one had (a replay). It is one
// statement in its own transaction, committed durably before it returns,
// so two nodes spending the same proof at once see one fresh and one
// replay, and a crash right after an accept cannot forget the proof. It
// is bounded by the store's timeout; a failure is an error (never fresh)
// that errors.Is profile.ErrUnavailable, naming no server.
func (s *Store) UseDPoPProof(ctx context.Context, jkt string, proofHash [sha256.Size]byte, expires time.Time) (fresh bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, s.fail(ctx, err)
	}
	s.startPruning()
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tag, err := s.pool.Exec(opCtx, "INSERT INTO "+s.schema+".dpop_proofs (jkt, proof_hash, expires) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		jkt, proofHash[:], expires.Add(DPoPClockSkew))
	if err != nil {
		return false, s.fail(ctx, err)
	}
	return tag.RowsAffected() == 1, nil
}

// PruneDPoPProofs deletes the proofs expired by the database's clock, in
// statements of at most DPoPPruneBatch rows each bounded by the store's
// timeout, until none is left or ctx ends; it returns how many it
// deleted. Several nodes may prune at once: a row another node deletes
// first is simply not deleted twice.
func (s *Store) PruneDPoPProofs(ctx context.Context) (int64, error) {
	var total int64
	for {
		opCtx, cancel := context.WithTimeout(ctx, s.timeout)
		tag, err := s.pool.Exec(opCtx, "DELETE FROM "+s.schema+".dpop_proofs WHERE ctid = ANY(ARRAY(SELECT ctid FROM "+s.schema+
			".dpop_proofs WHERE expires < now() LIMIT $1))", DPoPPruneBatch)
		cancel()
		if err != nil {
			return total, s.fail(ctx, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < DPoPPruneBatch {
			return total, nil
		}
	}
}

// startPruning starts the background pruning on the first use of a
// proof: a node that never sees one has nothing to prune. Close stops it.
func (s *Store) startPruning() {
	p := &s.prune
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	var ctx context.Context
	ctx, p.stop = context.WithCancel(context.Background())
	p.done = make(chan struct{})
	go s.pruneLoop(ctx, p.done)
}

func (s *Store) pruneLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(s.pruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// a failure is retried at the next tick: expired rows refuse
		// nothing a node would accept, they only take room
		_, _ = s.PruneDPoPProofs(ctx)
	}
}

// stopPruning stops the background pruning, if started, and waits for
// it; no pruning starts after.
func (s *Store) stopPruning() {
	p := &s.prune
	p.mu.Lock()
	p.closed = true
	stop, done := p.stop, p.done
	p.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// UseDPoPProof is the open store's; before the store is open it fails
// with the error of every call then (never fresh).
func (l *Lazy) UseDPoPProof(ctx context.Context, jkt string, proofHash [sha256.Size]byte, expires time.Time) (fresh bool, err error) {
	s, err := l.open(ctx)
	if err != nil {
		return false, err
	}
	return s.UseDPoPProof(ctx, jkt, proofHash, expires)
}
