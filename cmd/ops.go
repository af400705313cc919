package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sks-server/sks/audit"
	"github.com/sks-server/sks/clientaddr"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/guard"
	"github.com/sks-server/sks/metrics"
	"github.com/sks-server/sks/server"
	"github.com/sks-server/sks/tokens"
)

// ops holds the production-operation parts wired into the server: the
// brute-force guard, the audit log and the metrics.
type ops struct {
	guard    *guard.Guard
	audit    *audit.Log
	metrics  *metrics.Metrics
	metSrv   *http.Server
	metLn    net.Listener
	log      *slog.Logger
	shutdown []func()
}

// setupOps builds the guard, audit log and metrics that cfg asks for and
// sets the server hooks in opts. certNotAfter is nil without TLS.
//
// The guard's counts live where the tokens do: shared by every node in Redis
// when the store is Redis, written through to badger (kept across restarts)
// when the store is on disk, in memory otherwise.
func setupOps(ctx context.Context, cfg *conf.Config, store tokens.Store, opts *server.Options, certNotAfter func() time.Time, log *slog.Logger) (*ops, error) {
	o := &ops{log: log}
	var err error
	if cfg.Audit.Path != "" {
		o.audit, err = audit.Open(audit.Config{Path: cfg.Audit.Path, FailClosed: cfg.Audit.Closed(), Sync: cfg.Audit.Sync, Logger: log})
		if err != nil {
			return nil, err
		}
		o.shutdown = append(o.shutdown, func() { o.audit.Close() })
	}
	if cfg.Metrics.On() {
		o.metrics = metrics.New(metrics.Options{Modules: moduleNames(cfg), CertNotAfter: certNotAfter, ProcessMetrics: true})
	}
	if cfg.Limits.On() {
		l := cfg.Limits
		gc := guard.Config{
			Default:           guard.Limits{UserFailures: l.UserFailures, AddrFailures: l.AddressFailures, Window: l.Window.Duration, Ban: l.Ban.Duration},
			MaxEntries:        l.MaxEntries,
			MinFailureLatency: l.MinFailureLatency.Duration,
			Logger:            log.With("component", "guard"),
			OnBan:             o.ban,
		}
		if len(l.Realms) > 0 {
			gc.Realms = make(map[string]guard.Limits, len(l.Realms))
			for name, r := range l.Realms {
				gc.Realms[name] = guard.Limits{UserFailures: r.UserFailures, Window: r.Window.Duration, Ban: r.Ban.Duration}
			}
		}
		state, where, err := guardState(ctx, cfg, store)
		if err != nil {
			o.close()
			return nil, err
		}
		gc.State = state
		o.guard = guard.New(gc)
		log.Debug("brute-force limits on", "state", where)
		opts.Unban = func(ctx context.Context, realm, user, address string) (bool, error) {
			if address != "" {
				return o.guard.UnbanAddr(ctx, address)
			}
			return o.guard.Unban(ctx, realm, user)
		}
	}

	h := &opts.Hooks
	if o.guard != nil {
		h.BeforeLogin = o.guard.LoginGate
	}
	h.AfterLogin = o.afterLogin
	h.Event = o.event
	h.Reserve = o.reserve
	if o.metrics != nil {
		h.Request = o.metrics.Request
		if cfg.Metrics.Listen == "" {
			opts.Mount["/metrics"] = loopbackOnly(o.metrics.Handler(), cfg.Metrics.Public, opts.Clients)
		} else {
			ln, err := net.Listen("tcp", cfg.Metrics.Listen)
			if err != nil {
				o.close()
				return nil, fmt.Errorf("cannot listen for metrics on %s: %w", cfg.Metrics.Listen, err)
			}
			mux := http.NewServeMux()
			mux.Handle("/metrics", o.metrics.Handler())
			o.metLn = ln
			o.metSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
			go func() {
				if err := o.metSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					log.Error("metrics listener stopped", "err", err)
				}
			}()
			o.shutdown = append(o.shutdown, func() { o.metSrv.Close() })
		}
	}
	return o, nil
}

// guardState picks the brute-force guard's state for the token store.
func guardState(ctx context.Context, cfg *conf.Config, store tokens.Store) (guard.State, string, error) {
	switch st := store.(type) {
	case *tokens.Redis:
		c, prefix, err := st.GuardClient()
		if err != nil {
			return nil, "", err
		}
		// An attempt of a node that dies mid-login stays counted at most
		// this long.
		return guard.NewRedis(c, prefix, 2*cfg.LoginTimeout.Duration+time.Minute), "redis", nil
	case *tokens.Badger:
		if cfg.DataDir == "" {
			return nil, "memory", nil
		}
		m, err := guard.NewPersistentMemory(ctx, cfg.Limits.MaxEntries, st, time.Now())
		if err != nil {
			return nil, "", err
		}
		return m, "badger", nil
	}
	return nil, "memory", nil
}

// moduleNames are the module names that may appear as metric labels.
func moduleNames(cfg *conf.Config) []string {
	names := []string{"pam", "demo", "static", "ldap", "kerberos", "krb5"}
	for n := range cfg.Modules {
		names = append(names, n)
	}
	return names
}

func (o *ops) afterLogin(realm, user, client string, relay bool, module string, ok bool, err error, took time.Duration) {
	if o.audit != nil {
		o.audit.Login(realm, user, client, module, ok, err, took)
	}
	if o.metrics != nil {
		o.metrics.Login(realm, user, client, module, ok, err, took)
	}
	if o.guard != nil {
		o.guard.LoginDone(realm, user, client, relay, module, ok, err, took) // may pad a failure: last
	}
}

func (o *ops) event(ctx context.Context, e server.Event) error {
	if o.audit != nil {
		err := o.audit.Write(audit.Event{Kind: e.Kind, Realm: e.Realm, User: e.User, Source: e.Source, Client: e.Client, Token: e.Token, Detail: e.Detail})
		if err != nil {
			return err
		}
	}
	if o.metrics != nil {
		o.metrics.Event(e.Kind)
	}
	return nil
}

func (o *ops) reserve(context.Context) error {
	if o.audit != nil {
		return o.audit.Reserve()
	}
	return nil
}

func (o *ops) ban(b guard.Ban) {
	if o.audit != nil {
		_ = o.audit.Write(audit.Event{Kind: audit.KindBan, Realm: b.Realm, User: b.User, Client: b.Client,
			Detail: "reason=" + b.Reason + " until=" + b.Until.UTC().Format(time.RFC3339)})
	}
	if o.metrics != nil {
		o.metrics.Ban(b.Reason)
	}
}

// reopen reopens the audit log (SIGHUP, after logrotate moved it).
func (o *ops) reopen() {
	if o.audit == nil {
		return
	}
	if err := o.audit.Reopen(); err != nil {
		o.log.Error("audit log not reopened", "err", err)
		return
	}
	o.log.Info("audit log reopened")
}

// close stops the metrics listener and closes the audit log.
func (o *ops) close() {
	for i := len(o.shutdown) - 1; i >= 0; i-- {
		o.shutdown[i]()
	}
	o.shutdown = nil
}

// loopbackOnly refuses non-loopback clients unless public. Behind a proxy
// (trusted_proxies set, or a forwarded request) no caller counts as local.
func loopbackOnly(h http.Handler, public bool, clients *clientaddr.Resolver) http.Handler {
	if public {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !clients.LocalCaller(r) {
			http.Error(w, "metrics are served to loopback clients only ([metrics] public or listen)", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
