package caddymodule

import (
	"errors"
	"net/http"

	"github.com/workspace-edge/caddy-workspace-profile/internal/authn"
	"github.com/workspace-edge/caddy-workspace-profile/profile"
)

// Problem codes the glue refuses with besides the core's (jwtauth.Code*)
// and the authentication decision's (authn.Code*).
const (
	codeServiceAccountForbidden = authn.CodeServiceAccountForbidden
	// codeInvalidPath: the path names the route only through an encoded
	// slash, a backslash or a control character.
	codeInvalidPath = "InvalidPath"
)

// statusOf maps an error of the profile service to the status and envelope
// item the route answers with. It is the one place where domain errors meet
// HTTP; anything it does not know is a store failure.
func statusOf(err error) (int, profile.Item) {
	switch {
	case errors.Is(err, profile.ErrNotFound):
		return http.StatusNotFound, profile.NotFoundItem()
	case errors.Is(err, profile.ErrPreconditionFailed):
		return http.StatusPreconditionFailed, profile.PreconditionFailedItem()
	case errors.Is(err, profile.ErrUserNameTaken):
		return http.StatusBadRequest, profile.UserNameTakenItem()
	default:
		return http.StatusServiceUnavailable, profile.StorageUnavailableItem()
	}
}
