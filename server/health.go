package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/sks-server/sks/clientaddr"
)

// ReadyCheck is one component /readyz checks: the token store, or a login
// module's backend. Check returns nil when the component answers.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// HealthOptions configures the /healthz and /readyz handlers.
type HealthOptions struct {
	// Checks are the components whose reachability makes the server ready.
	Checks []ReadyCheck
	// Timeout bounds each round of checks. Default 3s.
	Timeout time.Duration
	// MaxAge is how long a round's result is reused, so that many probes
	// (several load balancers, a client hammering /readyz) cause at most
	// one round of backend checks per MaxAge. Default 1s.
	MaxAge time.Duration
	// Detail reports whether a caller may see the JSON detail (component
	// names and errors, which can name internal hosts). Nil: loopback only.
	Detail func(r *http.Request) bool
	// Report, if set, is told each component's state after every round
	// (the sks_ready gauge).
	Report func(component string, ready bool)
	// Logger logs changes of a component's state (ready to not ready and
	// back) at WARN and INFO.
	Logger *slog.Logger
}

// Health serves /healthz (the process is up and answering: always 200
// "ok") and /readyz (200 "ready" when the token store and every login
// backend that can be checked answer, 503 "not ready" otherwise), as
// Kubernetes probes and load balancer health checks expect.
type Health struct {
	o HealthOptions

	round sync.Mutex // one round of checks at a time
	mu    sync.Mutex
	last  healthResult
	at    time.Time
}

type healthResult struct {
	Status     string                     `json:"status"`
	Components map[string]componentResult `json:"components"`
	ready      bool
}

type componentResult struct {
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
}

// NewHealth returns the health handlers for o.
func NewHealth(o HealthOptions) *Health {
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = time.Second
	}
	if o.Detail == nil {
		o.Detail = (*clientaddr.Resolver)(nil).LocalCaller
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sort.Slice(o.Checks, func(i, j int) bool { return o.Checks[i].Name < o.Checks[j].Name })
	return &Health{o: o}
}

// Healthz answers 200 "ok" to GET and HEAD: the process is up.
func (h *Health) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			reply(w, http.StatusMethodNotAllowed, "ERR: use GET\n")
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		reply(w, http.StatusOK, "ok\n")
	})
}

// Readyz answers 200 when every component is reachable and 503 otherwise;
// loopback callers (or those Detail allows) get a JSON body naming each
// component and its error, others a plain "ready" or "not ready".
func (h *Health) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			reply(w, http.StatusMethodNotAllowed, "ERR: use GET\n")
			return
		}
		res := h.check(r.Context())
		status := http.StatusOK
		if !res.ready {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		if h.o.Detail(r) {
			b, _ := json.MarshalIndent(res, "", "  ")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			w.Write(append(b, '\n'))
			return
		}
		reply(w, status, res.Status+"\n")
	})
}

// Ready runs (or reuses, within MaxAge) a round of checks and reports
// whether every component answered.
func (h *Health) Ready(ctx context.Context) bool { return h.check(ctx).ready }

// check returns the latest result, running a new round when the last is
// older than MaxAge. Concurrent callers share one round.
func (h *Health) check(ctx context.Context) healthResult {
	if res, ok := h.fresh(); ok {
		return res
	}
	h.round.Lock()
	defer h.round.Unlock()
	if res, ok := h.fresh(); ok {
		return res
	}
	// The round is shared, so it does not end with one caller's request.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.o.Timeout)
	defer cancel()
	res := healthResult{Components: make(map[string]componentResult, len(h.o.Checks)), ready: true}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range h.o.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Check(ctx)
			cr := componentResult{Ready: err == nil}
			if err != nil {
				cr.Error = err.Error()
			}
			mu.Lock()
			res.Components[c.Name] = cr
			if err != nil {
				res.ready = false
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Status = "ready"
	if !res.ready {
		res.Status = "not ready"
	}
	h.mu.Lock()
	prev := h.last
	h.last, h.at = res, time.Now()
	h.mu.Unlock()
	for _, c := range h.o.Checks {
		cr := res.Components[c.Name]
		if h.o.Report != nil {
			h.o.Report(c.Name, cr.Ready)
		}
		was, seen := prev.Components[c.Name]
		switch {
		case !cr.Ready && (!seen || was.Ready):
			h.o.Logger.Warn("component not ready", "component", c.Name, "err", cr.Error)
		case cr.Ready && seen && !was.Ready:
			h.o.Logger.Info("component ready again", "component", c.Name)
		}
	}
	return res
}

func (h *Health) fresh() (healthResult, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last.Components != nil && time.Since(h.at) < h.o.MaxAge {
		return h.last, true
	}
	return healthResult{}, false
}

// Watch runs a round of checks every interval until ctx ends, so that the
// readiness gauge and the state-change log lines stay current when nothing
// probes /readyz.
func (h *Health) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		h.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// IsAdmin reports whether r carries an admin credential (or comes from
// loopback where loopback callers are admins), as admin endpoints decide.
func (s *Server) IsAdmin(r *http.Request) bool {
	_, ok := s.isAdmin(&request{r: r})
	return ok
}
