package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/server"
	"github.com/sks-server/sks/tokens"
)

// storeCheck reads a token that cannot exist: the store is ready when it
// answers "not found".
func storeCheck(store tokens.Store) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := store.Get(ctx, "", tokens.Hash{})
		if err == nil || errors.Is(err, tokens.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("token store: %w", err)
	}
}

// readyChecks are what /readyz checks: the token store and each login
// module whose backend can be reached (LDAP, Kerberos).
func readyChecks(store tokens.Store, router *realms.Router) []server.ReadyCheck {
	checks := []server.ReadyCheck{{Name: "store", Check: storeCheck(store)}}
	for _, c := range router.Checkers() {
		checks = append(checks, server.ReadyCheck{Name: "module:" + c.Name, Check: c.Check})
	}
	return checks
}

// setupHealth mounts /healthz and /readyz. isAdmin decides, besides
// loopback, who sees /readyz's JSON detail.
func setupHealth(store tokens.Store, router *realms.Router, opts *server.Options, o *ops, isAdmin func(*http.Request) bool, log *slog.Logger) *server.Health {
	ho := server.HealthOptions{
		Checks: readyChecks(store, router),
		Logger: log.With("component", "health"),
		Detail: func(r *http.Request) bool {
			// Loopback only where no proxy makes every client look local.
			return opts.Clients.LocalCaller(r) || isAdmin(r)
		},
	}
	if o.metrics != nil {
		ho.Report = o.metrics.ReadyGauge()
	}
	h := server.NewHealth(ho)
	opts.Mount["/healthz"] = h.Healthz()
	opts.Mount["/readyz"] = h.Readyz()
	return h
}

// healthInterval is how often the server checks its components by itself,
// keeping sks_ready current and logging changes without any probe.
const healthInterval = 15 * time.Second
