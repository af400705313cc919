package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/server"
	"github.com/sks-server/sks/tokens"
)

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkValid measures the handler's own cost for /valid of a current
// token on badger on disk: the path every web request of our users waits on.
func BenchmarkValid(b *testing.B) {
	store, err := tokens.OpenBadger(tokens.BadgerOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	svc := tokens.NewService(store)
	tok, _, err := svc.Issue(context.Background(), "bench", "alice", "alice\npam\nuid=1000\ngid=1000\n", nil, tokens.Policy{})
	if err != nil {
		b.Fatal(err)
	}
	r, _ := realms.Open(conf.Default(), nil)
	s := server.New(server.Options{Tokens: svc, Realms: r})
	req := httptest.NewRequest("GET", "/valid?realm=bench&token="+tok, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			s.ServeHTTP(w, req)
		}
	})
}
