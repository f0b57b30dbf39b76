package caddymodule

import (
	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
)

// Problem details and codes of DPoP refusals, made in internal/authn; the
// names the glue and its tests know them by.
const (
	detailDPoPRequired   = authn.DetailDPoPRequired
	detailNoDPoPToken    = authn.DetailNoDPoPToken
	detailBoundNoDPoP    = authn.DetailBoundNoDPoP
	codeInvalidDPoPProof = authn.CodeInvalidDPoPProof
)

// on reports whether DPoP tokens are accepted at all.
func (d *DPoP) on() bool { return d != nil && d.verifier != nil }

func (d *DPoP) required() bool { return d.on() && d.Mode == DPoPRequired }

// mode is the mode as internal/authn takes it: off when no proof verifier
// was built.
func (d *DPoP) mode() authn.DPoPMode {
	switch {
	case !d.on():
		return authn.DPoPOff
	case d.required():
		return authn.DPoPRequired
	}
	return authn.DPoPAllowed
}
