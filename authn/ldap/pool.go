package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/sks-server/sks/authn"
)

// conn is one connection to a directory server, bound as the service
// account (or anonymous when no bind_dn is set) whenever it sits in the pool.
//
// Deadlines are set on the raw TCP connection under go-ldap, because go-ldap
// v3 has no context support and its own request timeout neither covers the
// StartTLS handshake nor closes a connection that stopped answering. A
// deadline that fires (or a cancelled ctx) makes go-ldap's reader fail and
// close the connection, so a timed-out conn is never reused.
type conn struct {
	srv    *server
	raw    net.Conn // the TCP connection; deadlines go here
	lc     *goldap.Conn
	reused bool // came out of the pool rather than freshly dialed
	ops    int  // requests completed during the current checkout
	broken bool // must be closed, not returned to the pool
}

// pastTime is a deadline in the past: setting it interrupts blocked I/O.
var pastTime = time.Unix(1, 0)

// opError is the failure of one request because the connection or server
// failed, as opposed to an LDAP result the server sent.
type opError struct {
	url, step string
	cause     error
	timeout   bool // the deadline passed or ctx ended
}

func (e *opError) Error() string {
	return fmt.Sprintf("ldap %s: %s: %v: %v", e.url, e.step, e.cause, authn.ErrUnavailable)
}

func (e *opError) Unwrap() []error { return []error{authn.ErrUnavailable, e.cause} }

// deadline is the earlier of now+timeout and ctx's deadline.
func deadline(ctx context.Context, timeout time.Duration) time.Time {
	dl := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	return dl
}

// do runs one request with the deadline and ctx applied to the connection.
// LDAP results (such as invalid credentials) are returned as go-ldap errors;
// failures of the connection or of time are returned as *opError, which
// wraps authn.ErrUnavailable, and mark the conn broken.
func (c *conn) do(ctx context.Context, timeout time.Duration, step string, op func() error) error {
	dl := deadline(ctx, timeout)
	_ = c.raw.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.raw.SetDeadline(pastTime) })
	err := op()
	interrupted := !stop()
	if !interrupted {
		_ = c.raw.SetDeadline(time.Time{})
	}
	switch {
	case interrupted || c.lc.IsClosing():
		c.broken = true
	case err != nil && goldap.IsErrorAnyOf(err, goldap.ErrorNetwork, goldap.LDAPResultBusy,
		goldap.LDAPResultUnavailable, goldap.LDAPResultTimeLimitExceeded, goldap.LDAPResultAdminLimitExceeded):
		// busy, unavailable, time limits: the server is there but cannot
		// answer now; a fresh connection may do better.
		c.broken = true
	}
	if err == nil {
		c.ops++
		return nil
	}
	if !c.broken {
		return err // an LDAP result for the caller to classify
	}
	cause, timedOut := err, true
	switch {
	case ctx.Err() != nil:
		cause = fmt.Errorf("%w (%v)", ctx.Err(), err)
	case !time.Now().Before(dl):
		cause = fmt.Errorf("no answer within %s (%v)", timeout, err)
	default:
		timedOut = false
		if last := c.lc.GetLastError(); last != nil && !errors.Is(err, last) {
			cause = fmt.Errorf("%v (%v)", err, last)
		}
	}
	return &opError{url: c.srv.url, step: step, cause: cause, timeout: timedOut}
}

func (c *conn) close() {
	if c.lc != nil {
		c.lc.Close()
	} else if c.raw != nil {
		c.raw.Close()
	}
}

// dialer opens connections to the configured servers.
type dialer struct {
	servers  []*server
	startTLS bool
	timeout  time.Duration
	bindDN   string
	bindPW   string
	// userBinds marks the dialer of the bind pool: its connections are
	// never bound as the service account (the user's bind comes next).
	userBinds bool
}

// dial connects to the first server that answers, in configured order, and
// binds as the service account.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	var last error
	for _, s := range d.servers {
		c, err := d.dialOne(ctx, s)
		if err == nil {
			return c, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if len(d.servers) > 1 {
		return nil, fmt.Errorf("ldap: no server of %d answered; last: %w", len(d.servers), last)
	}
	return nil, last
}

func (d *dialer) dialOne(ctx context.Context, s *server) (*conn, error) {
	fail := func(step string, err error) error {
		var ne net.Error
		timedOut := ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout())
		return &opError{url: s.url, step: step, cause: err, timeout: timedOut}
	}
	dl := deadline(ctx, d.timeout)
	nd := net.Dialer{Deadline: dl}
	raw, err := nd.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fail("connect", err)
	}
	var nc net.Conn = raw
	if s.ldaps {
		_ = raw.SetDeadline(dl)
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fail("tls handshake", err)
		}
		_ = raw.SetDeadline(time.Time{})
		nc = tc
	}
	lc := goldap.NewConn(nc, s.ldaps)
	lc.Start()
	c := &conn{srv: s, raw: raw, lc: lc}
	if d.startTLS && !s.ldaps {
		if err := c.do(ctx, d.timeout, "starttls", func() error { return c.lc.StartTLS(s.tls) }); err != nil {
			c.close()
			var oe *opError
			if errors.As(err, &oe) {
				return nil, err
			}
			return nil, fail("starttls", err)
		}
	}
	if !d.userBinds {
		if err := d.bindService(ctx, c); err != nil {
			c.close()
			return nil, err
		}
	}
	c.ops = 0
	return c, nil
}

// bindService (re)binds c as the service account, or anonymously when none
// is configured. Failing that, c is marked broken.
func (d *dialer) bindService(ctx context.Context, c *conn) error {
	err := c.do(ctx, d.timeout, "service account bind", func() error {
		if d.bindDN == "" {
			return c.lc.UnauthenticatedBind("")
		}
		return c.lc.Bind(d.bindDN, d.bindPW)
	})
	if err != nil {
		c.broken = true
		var oe *opError
		if !errors.As(err, &oe) {
			// The server answered but refused: a configuration problem,
			// not an outage.
			err = fmt.Errorf("ldap %s: service account bind as %q failed (check bind_dn and bind_password): %w",
				c.srv.url, d.bindDN, err)
		}
	}
	return err
}

// pool keeps up to size service-account connections. A slot (a token in
// slots) is held by every checked-out connection and idle connections are
// only taken while holding one, so at most size connections are ever open.
type pool struct {
	d     *dialer
	slots chan struct{}
	idle  chan *conn

	mu     sync.Mutex
	closed bool

	open    atomic.Int64 // connections open now
	maxOpen atomic.Int64 // high-water mark of open, for tests
}

func newPool(d *dialer, size int) *pool {
	return &pool{d: d, slots: make(chan struct{}, size), idle: make(chan *conn, size)}
}

var errClosed = fmt.Errorf("ldap: module closed: %w", authn.ErrUnavailable)

// get returns a connection bound as the service account: an idle one if it
// still looks alive, else a new one. It waits for a free slot at most the
// timeout and never past ctx.
func (p *pool) get(ctx context.Context) (*conn, error) {
	t := time.NewTimer(p.d.timeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("ldap: waiting for a free connection: %w: %w", ctx.Err(), authn.ErrUnavailable)
	case <-t.C:
		return nil, fmt.Errorf("ldap: no free connection within %s (pool_size %d): %w",
			p.d.timeout, cap(p.slots), authn.ErrUnavailable)
	}
	if p.isClosed() {
		<-p.slots
		return nil, errClosed
	}
	for {
		select {
		case c := <-p.idle:
			if c.lc.IsClosing() {
				p.discard(c)
				continue
			}
			c.reused, c.ops = true, 0
			return c, nil
		default:
		}
		break
	}
	c, err := p.d.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, err
	}
	n := p.open.Add(1)
	for m := p.maxOpen.Load(); n > m && !p.maxOpen.CompareAndSwap(m, n); m = p.maxOpen.Load() {
	}
	return c, nil
}

// put returns a connection taken with get. Broken connections are closed.
// The caller must have rebound c as the service account.
func (p *pool) put(c *conn) {
	defer func() { <-p.slots }()
	if c.broken || c.lc.IsClosing() {
		p.discard(c)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		select {
		case p.idle <- c:
			return
		default:
		}
	}
	p.discard(c)
}

func (p *pool) discard(c *conn) {
	c.close()
	p.open.Add(-1)
}

func (p *pool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes idle connections; connections in use are closed when put back.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for {
		select {
		case c := <-p.idle:
			p.discard(c)
		default:
			return
		}
	}
}
