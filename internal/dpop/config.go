package dpop

import (
	"errors"
	"fmt"

	"github.com/workspace-edge/caddy-workspace-profile/internal/jwtauth"
)

// Check reports the first field of cfg that New refuses, so that a caller
// can refuse a bad config before it builds anything. Its errors name each
// field by its option in the Caddy module's dpop block (algorithms,
// iat_window; leeway is the handler's own option).
func (cfg Config) Check() error {
	for _, a := range cfg.Algorithms {
		if err := jwtauth.CheckAlgorithm(a); err != nil {
			return fmt.Errorf("algorithms: %w", err)
		}
	}
	switch {
	case cfg.Window < 0:
		return errors.New("iat_window: must not be negative")
	case cfg.Future < 0:
		return errors.New("the future part of the iat window must not be negative")
	case cfg.Leeway < 0:
		return errors.New("leeway: must not be negative")
	}
	return nil
}
