package jwtauth

import (
	"errors"
	"fmt"
)

// Check reports the first field of cfg that New refuses, Sources aside,
// so that a caller can refuse a bad config before it loads any key (a
// file read, a fetch started). Its errors name each field by its option
// in the Caddy module (issuer, audience, algorithms, token_type, clients,
// leeway, max_token_lifetime, token_cache), which is how the people who
// write the config know it.
func (cfg Config) Check() error {
	if len(cfg.Issuers) == 0 {
		return errors.New("issuer: at least one issuer is required")
	}
	if len(cfg.Audiences) == 0 {
		return errors.New("audience: at least one audience is required")
	}
	return cfg.CheckValues()
}

// CheckValues is Check without the required fields: it checks only the
// values that are set, so that a parser that meets the options one at a
// time can run it after each, before the required ones have come.
func (cfg Config) CheckValues() error {
	for _, a := range cfg.Algorithms {
		if err := CheckAlgorithm(a); err != nil {
			return fmt.Errorf("algorithms: %w", err)
		}
	}
	for _, tt := range cfg.TokenTypes {
		if err := CheckTokenType(tt); err != nil {
			return fmt.Errorf("token_type: %w", err)
		}
	}
	for _, c := range cfg.Clients {
		if c == "" {
			return errors.New("clients: a client id is empty")
		}
	}
	switch {
	case cfg.Leeway != nil && *cfg.Leeway < 0:
		return errors.New("leeway: must not be negative")
	case cfg.MaxLifetime < 0:
		return errors.New("max_token_lifetime: must not be negative")
	case cfg.CacheSize < 0:
		return errors.New("token_cache: must not be negative")
	}
	return nil
}

// CheckAlgorithm refuses a JWS algorithm that no token or proof may be
// signed with: anything SupportedAlgorithm does not name (HMAC, none,
// Ed448, unknown names).
func CheckAlgorithm(a string) error {
	if !SupportedAlgorithm(a) {
		return fmt.Errorf("%q is not an accepted asymmetric JWS algorithm", a)
	}
	return nil
}

// Check reports the first refresh option that remote key sets cannot
// run with: a negative duration, or bounds in the wrong order (see
// CheckRefreshOrder). Zero fields take their defaults. Its errors name
// the options as the Caddy module spells them.
func (o RefreshOptions) Check() error {
	if err := o.CheckValues(); err != nil {
		return err
	}
	return CheckRefreshOrder(o.MinRefresh, o.MaxRefresh, o.MaxStale)
}

// CheckValues is Check without the order of the bounds, which holds only
// once all three are known.
func (o RefreshOptions) CheckValues() error {
	if o.MinRefresh < 0 || o.MaxRefresh < 0 || o.MaxStale < 0 {
		return errors.New("min_refresh/max_refresh/max_stale: must not be negative")
	}
	return nil
}
