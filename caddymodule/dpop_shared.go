package caddymodule

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/workspace-edge/caddy-workspace-profile/internal/dpop"
	"github.com/workspace-edge/caddy-workspace-profile/internal/drain"
)

// proofRecorder is a store that keeps the DPoP proofs used on any node
// (profile/pgstore: a table of the schema the nodes share).
type proofRecorder interface {
	UseDPoPProof(ctx context.Context, jkt string, proofHash [sha256.Size]byte, expires time.Time) (fresh bool, err error)
}

// sharedProofsOf is the record of used proofs of the route: that of the
// first of backends (the profile store, then the API-key store) whose
// store the nodes share, nil when none does (bolt and memory are one
// node's: its replay cache is all there is). The record is the backend of
// this config's own, so a reload to another store gives the new config's
// verifier the new store, and the old config's keeps the old one, which
// closes only after its calls in progress (internal/drain).
func (h *Handler) sharedProofsOf(backends ...StorageBackend) dpop.SharedReplay {
	for _, b := range backends {
		p, ok := b.(*PostgresStorage)
		if !ok || p.store == nil {
			continue
		}
		if rec, ok := p.store.Store.(proofRecorder); ok {
			return &sharedProofs{store: p.store, rec: rec, logger: h.logger, errs: h.storeErrors}
		}
	}
	return nil
}

// sharedProofs is a store's record of used proofs as the route's verifier
// uses it: each check holds the store open (a reload's cleanup waits for
// it), is counted and timed, and a failure is logged, rate limited with
// the route's other store failures, naming no key, proof or server.
type sharedProofs struct {
	store  *drain.Store
	rec    proofRecorder
	logger *zap.Logger
	errs   *errorLog
}

func (s *sharedProofs) UseProof(ctx context.Context, jkt string, key [sha256.Size]byte, expires time.Time) (bool, error) {
	defer s.store.Enter()()
	start := time.Now()
	fresh, err := s.rec.UseDPoPProof(ctx, jkt, key, expires)
	metricDPoPSharedSeconds.Observe(time.Since(start).Seconds())
	switch {
	case err != nil:
		metricDPoPSharedChecks.WithLabelValues(dpopSharedFailed).Inc()
		if ctx.Err() == nil {
			s.errs.log(s.logger, fmt.Errorf("DPoP proof record: %w", err))
		}
	case fresh:
		metricDPoPSharedChecks.WithLabelValues(dpopSharedFresh).Inc()
	default:
		metricDPoPSharedChecks.WithLabelValues(dpopSharedReplayed).Inc()
	}
	return fresh, err
}
