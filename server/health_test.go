package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	var down atomic.Bool
	var calls atomic.Int32
	reported := map[string]bool{}
	h := NewHealth(HealthOptions{
		Checks: []ReadyCheck{
			{Name: "store", Check: func(context.Context) error { return nil }},
			{Name: "module:corp", Check: func(context.Context) error {
				calls.Add(1)
				if down.Load() {
					return errors.New("ldap ldap://10.0.0.7: connect: refused")
				}
				return nil
			}},
		},
		MaxAge: time.Nanosecond,
		Report: func(c string, ok bool) { reported[c] = ok },
	})
	get := func(hd http.Handler, remote, method string) (int, string, string) {
		r := httptest.NewRequest(method, "/readyz", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		hd.ServeHTTP(w, r)
		b, _ := io.ReadAll(w.Result().Body)
		return w.Code, w.Header().Get("Content-Type"), string(b)
	}
	const local, remote = "127.0.0.1:5555", "192.0.2.1:5555"

	if code, _, body := get(h.Healthz(), remote, "GET"); code != 200 || body != "ok\n" {
		t.Errorf("healthz = %d %q", code, body)
	}
	if code, _, _ := get(h.Healthz(), remote, "POST"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST healthz = %d", code)
	}
	if code, _, body := get(h.Readyz(), remote, "GET"); code != 200 || body != "ready\n" {
		t.Errorf("readyz (remote) = %d %q", code, body)
	}
	code, ct, body := get(h.Readyz(), local, "GET")
	var res struct {
		Status     string
		Components map[string]struct {
			Ready bool
			Error string
		}
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 200 || ct != "application/json" || !res.Components["module:corp"].Ready {
		t.Errorf("readyz (loopback) = %d %s %q (%v)", code, ct, body, err)
	}
	if !reported["store"] || !reported["module:corp"] {
		t.Errorf("reported %v", reported)
	}

	down.Store(true)
	code, _, body = get(h.Readyz(), remote, "GET")
	if code != 503 || body != "not ready\n" || strings.Contains(body, "10.0.0.7") {
		t.Errorf("readyz (remote, down) = %d %q: want 503 and no detail", code, body)
	}
	code, _, body = get(h.Readyz(), local, "GET")
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 503 || res.Status != "not ready" ||
		res.Components["module:corp"].Ready || !strings.Contains(res.Components["module:corp"].Error, "refused") || !res.Components["store"].Ready {
		t.Errorf("readyz (loopback, down) = %d %q", code, body)
	}
	if reported["module:corp"] {
		t.Error("gauge still says ready")
	}
}

// TestHealthSharesRounds: many probes at once cause one round of backend
// checks, not one each.
func TestHealthSharesRounds(t *testing.T) {
	var calls atomic.Int32
	h := NewHealth(HealthOptions{Checks: []ReadyCheck{{Name: "slow", Check: func(context.Context) error {
		calls.Add(1)
		time.Sleep(50 * time.Millisecond)
		return nil
	}}}, MaxAge: time.Minute})
	done := make(chan bool)
	for range 20 {
		go func() { done <- h.Ready(context.Background()) }()
	}
	for range 20 {
		if !<-done {
			t.Fatal("not ready")
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("%d rounds for 20 concurrent probes, want 1", n)
	}
}
