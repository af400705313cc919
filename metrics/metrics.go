// Package metrics exposes sks's Prometheus metrics: requests by endpoint and
// status, login latency by module and result, token events, bans and the
// TLS certificate's expiry.
//
// Label values are bounded: request paths outside the protocol's endpoints
// count as "other", module names outside the configured set as "other",
// and realms (chosen by clients) are never a label.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths are the request paths counted under their own name.
var Paths = []string{
	"/valid", "/revoke", "/replace", "/auth_token", "/pam_token", "/stored_token",
	"/gen_key", "/get_key", "/create_group", "/mod_group", "/group_hash", "/jwt",
	"/version", "/metrics", "/token", "/jwks.json", "/.well-known/jwks.json",
	"/healthz", "/readyz",
}

// Options configures Metrics.
type Options struct {
	// Modules are the configured login module names (and sources without
	// "auth/"); others are counted as "other".
	Modules []string
	// CertNotAfter, if set, reports the serving certificate's expiry.
	CertNotAfter func() time.Time
	// ProcessMetrics adds the Go runtime and process collectors.
	ProcessMetrics bool
}

// Metrics holds sks's collectors in a registry of its own.
type Metrics struct {
	reg      *prometheus.Registry
	paths    map[string]bool
	modules  map[string]bool
	requests *prometheus.CounterVec
	logins   *prometheus.HistogramVec
	tokens   *prometheus.CounterVec
	bans     *prometheus.CounterVec
}

// New registers the collectors.
func New(o Options) *Metrics {
	m := &Metrics{
		reg:     prometheus.NewRegistry(),
		paths:   make(map[string]bool, len(Paths)),
		modules: make(map[string]bool, len(o.Modules)),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sks_requests_total",
			Help: "HTTP requests answered, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
		logins: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sks_login_duration_seconds",
			Help:    "Time a login module took, by module and result (ok, fail, error).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"module", "result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sks_token_events_total",
			Help: "Token events: issued (by a login), stored (/stored_token), superseded (by a newer token of the user), replaced, revoked.",
		}, []string{"event"}),
		bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sks_login_bans_total",
			Help: "Brute-force bans started, by reason (user, address).",
		}, []string{"reason"}),
	}
	for _, p := range Paths {
		m.paths[p] = true
	}
	for _, n := range o.Modules {
		m.modules[n] = true
	}
	m.reg.MustRegister(m.requests, m.logins, m.tokens, m.bans)
	for _, e := range []string{"issued", "replaced", "superseded", "revoked", "stored"} {
		m.tokens.WithLabelValues(e)
	}
	for _, r := range []string{"user", "address"} {
		m.bans.WithLabelValues(r)
	}
	if o.CertNotAfter != nil {
		f := o.CertNotAfter
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sks_tls_certificate_not_after_seconds",
			Help: "Expiry of the serving TLS certificate, in Unix seconds.",
		}, func() float64 { return float64(f().Unix()) }))
	}
	if o.ProcessMetrics {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Request counts an answered request; its signature is the server's
// Request hook.
func (m *Metrics) Request(path string, status int, took time.Duration) {
	if !m.paths[path] {
		path = "other"
	}
	m.requests.WithLabelValues(path, strconv.Itoa(status)).Inc()
}

// Login observes a login's duration; its signature is the server's
// AfterLogin hook.
func (m *Metrics) Login(realm, user, client, module string, ok bool, err error, took time.Duration) {
	if !m.modules[module] {
		module = "other"
	}
	result := "ok"
	switch {
	case err != nil:
		result = "error"
	case !ok:
		result = "fail"
	}
	m.logins.WithLabelValues(module, result).Observe(took.Seconds())
}

// Event counts a server event by its kind (issue, supersede, replace,
// revoke, stored; other kinds are not token events and are ignored).
func (m *Metrics) Event(kind string) {
	switch kind {
	case "issue":
		m.tokens.WithLabelValues("issued").Inc()
	case "supersede":
		m.tokens.WithLabelValues("superseded").Inc()
	case "replace":
		m.tokens.WithLabelValues("replaced").Inc()
	case "revoke":
		m.tokens.WithLabelValues("revoked").Inc()
	case "stored":
		m.tokens.WithLabelValues("stored").Inc()
	}
}

// Ban counts a ban by reason ("user" or "address").
func (m *Metrics) Ban(reason string) {
	if reason != "user" && reason != "address" {
		reason = "other"
	}
	m.bans.WithLabelValues(reason).Inc()
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
