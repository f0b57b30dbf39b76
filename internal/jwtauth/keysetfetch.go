package jwtauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// One fetch of a remote key set: installing what it brings, the download
// with its size and key caps, the Cache-Control max-age that paces the
// next fetch, and the HTTP client with the URLs it may reach.

// fetchLocked downloads and parses the set; on success it replaces the set
// in force and returns the document's max-age (-1 when it gives none). The
// caller holds mu, so only one fetch runs at a time.
func (s *URLSource) fetchLocked(ctx context.Context) (time.Duration, error) {
	s.lastAttempt, s.attempted = s.elapsed(), true
	// this fetch gets any key published before it: a deferred unknown-kid
	// fetch pending is needless now
	if s.kidTimer != nil {
		s.kidTimer.Stop()
		s.kidTimer = nil
	}
	ks, maxAge, err := s.download(ctx)
	if err != nil {
		// URLs in errors are redacted where they are made (get); the rest
		// may quote the provider's document, so it is bounded
		s.lastError = logText(err.Error(), maxLoggedText)
		if s.observer != nil {
			s.observer.KeySetFetched(false)
		}
		s.log().Warn("fetching key set failed", zap.String("url", RedactURL(s.url)), zap.String("error", s.lastError),
			zap.Bool("serving_previous_keys", s.current() != nil))
		return 0, err
	}
	s.lastError = ""
	s.set.Store(ks)
	s.lastGoodWall.Store(s.now().UnixNano())
	s.lastGood.Store(int64(s.elapsed()))
	s.hasGood.Store(true)
	s.generation.Add(1)
	if s.observer != nil {
		s.observer.KeySetFetched(true)
	}
	s.log().Info("key set loaded", zap.String("url", RedactURL(s.url)), zap.Strings("kids", logKids(ks.kids())))
	return maxAge, nil
}

func (s *URLSource) download(ctx context.Context) (*keySet, time.Duration, error) {
	target := s.url
	if s.issuer != "" {
		if err := s.discover(ctx); err != nil {
			return nil, 0, err
		}
		target = s.jwksURI
	}
	body, hdr, err := s.get(ctx, target, "application/jwk-set+json, application/json")
	if err != nil {
		return nil, 0, err
	}
	ks, skipped, err := parseKeySet(body)
	s.skipped = logSkippedOnce(s.log(), RedactURL(s.url), skipped, s.skipped)
	if err != nil {
		return nil, 0, err
	}
	if len(ks.keys) > maxKeysPerSet {
		return nil, 0, fmt.Errorf("key set has %d keys, more than %d", len(ks.keys), maxKeysPerSet)
	}
	s.dupKids = logDuplicateKids(s.log(), RedactURL(s.url), ks, s.dupKids)
	return ks, cacheMaxAge(hdr.Get("Cache-Control")), nil
}

// get fetches one document with the source's client and size cap. Its
// errors name target redacted (see RedactURL), never in clear.
func (s *URLSource) get(ctx context.Context, target, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, nil, redactURLError(err)
	}
	req.Header.Set("Accept", accept)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, redactURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: status %d", RedactURL(target), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(body) > maxKeySetBytes {
		return nil, nil, fmt.Errorf("%s: document larger than %d bytes", RedactURL(target), maxKeySetBytes)
	}
	return body, resp.Header, nil
}

// cacheMaxAge reads max-age from a Cache-Control header: -1 when it gives
// none; no-store and no-cache mean "as soon as allowed" (0, which becomes
// min_refresh).
func cacheMaxAge(cc string) time.Duration {
	age := time.Duration(-1)
	for part := range strings.SplitSeq(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age", "s-maxage":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				age = time.Duration(n) * time.Second
			}
		}
	}
	return age
}

// newKeySetClient is an HTTP client with a timeout that follows at most
// three redirects and never from https down to plain http (not even to a
// loopback host, which a configured URL may name).
func newKeySetClient(timeout time.Duration, tlsConfig *tls.Config) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute,
			TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("too many redirects")
			}
			for _, prev := range via {
				if prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
					return errors.New("redirect from https to plain http refused")
				}
			}
			return CheckKeySetURL(req.URL)
		},
	}
}

// CheckKeySetURL allows https, and plain http only to a loopback host
// (a provider on the same machine, or a test).
func CheckKeySetURL(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("plain http is allowed only to a loopback host, not %q", host)
	}
	return fmt.Errorf("scheme %q is not https", u.Scheme)
}
