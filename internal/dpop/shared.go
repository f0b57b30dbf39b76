package dpop

import (
	"context"
	"crypto/sha256"
	"time"
)

// SharedReplay is a record of used proofs shared by the nodes of a
// cluster (RFC 9449 §11.1: a proof used on one node is refused on every
// other). UseProof records the proof of the key jkt whose replay key is
// key (the SHA-256 of thumbprint, normalized htu and jti), to be kept
// until expires: fresh is true when no node had recorded it. It must
// answer within a bound of its own; an error is never an accept.
type SharedReplay interface {
	UseProof(ctx context.Context, jkt string, key [sha256.Size]byte, expires time.Time) (fresh bool, err error)
}

// alreadyUsed is the refusal of a replay, whichever record knew it.
func alreadyUsed() *Error {
	return refuse("The DPoP proof was already used; make a new one for each request.")
}

// unavailable refuses a proof whose replay could not be checked.
func unavailable() *Error {
	return &Error{Desc: "The record of used DPoP proofs is unavailable; try again later.", Unavailable: true}
}

// commitShared spends p in the shared record, once the node's own replay
// cache took it: a replay this node saw is refused without asking the
// record, and a proof the record cannot vouch for is refused as
// Unavailable, never accepted. The proof stays spent in the node's cache
// either way (a failed write may still have committed), so a client
// retries with a new proof, as it must for every request. The row is kept
// for the cache's window from iat, the longest any route of this process
// accepts, so that the proof stays refused as long as one would take it.
func (v *Verifier) commitShared(ctx context.Context, p Proof) *Error {
	if v.shared == nil {
		return nil
	}
	iat := time.Unix(0, int64(p.iat*1e9))
	fresh, err := v.shared.UseProof(ctx, p.Thumbprint, p.replayKey, iat.Add(v.replay.Window()))
	switch {
	case err != nil:
		return unavailable()
	case !fresh:
		return alreadyUsed()
	}
	return nil
}
