package tls_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/sks-server/sks/conf"
	sksTLS "github.com/sks-server/sks/tls"
)

// Example shows how the HTTP server uses the package: load once at
// start-up (errors are fatal), reload on SIGHUP, poll for renewed files,
// and let a verified client certificate stand in for the admin credential.
func Example() {
	cfg := conf.TLS{Keystore: "/etc/sks/keystore"} // -tls; password defaults to SessionKeyServer
	log := slog.Default()
	loader, err := sksTLS.Load(cfg, sksTLS.WithLogger(log))
	if err != nil {
		log.Error("cannot start", "err", err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			_ = loader.Reload() // logs its own failure and keeps the old certificate
		}
	}()
	go loader.Watch(ctx, 0) // tls.reload_interval, default 5s

	srv := &http.Server{
		Addr:      ":4431",
		TLSConfig: loader.Config(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			admin := sksTLS.ClientCertVerified(r) // or the admin token
			_ = admin
		}),
	}
	_ = srv.ListenAndServeTLS("", "") // certificate comes from TLSConfig
}
