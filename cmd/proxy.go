package cmd

import (
	"log/slog"
	"net/netip"

	"github.com/sks-server/sks/clientaddr"
	"github.com/sks-server/sks/conf"
)

// proxySettings reads [http] trusted_proxies and every realm's relays.
func proxySettings(cfg *conf.Config, log *slog.Logger) (*clientaddr.Resolver, map[string][]netip.Prefix, error) {
	clients, err := clientaddr.New(cfg.HTTP.TrustedProxies)
	if err != nil {
		return nil, nil, err
	}
	if clients.Configured() && cfg.Admin.LoopbackAllowed() {
		log.Info("loopback callers are not admin while [http] trusted_proxies is set; give local admin callers the admin token ([admin] token_file)")
	}
	relays := map[string][]netip.Prefix{}
	for name, r := range cfg.Realms {
		p, err := clientaddr.ParsePrefixes("realm "+name+": relays", r.Relays)
		if err != nil {
			return nil, nil, err
		}
		relays[name] = p
	}
	return clients, relays, nil
}
