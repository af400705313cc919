package realms

import (
	"fmt"
	"log/slog"
	"sort"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/conf"
)

// Checkers returns the configured modules whose backend can be checked
// (authn.Checker: LDAP, Kerberos), by name in sorted order, for /readyz and
// "sks check-config --connect".
func (r *Router) Checkers() []NamedChecker {
	var out []NamedChecker
	for name, m := range r.modules {
		if c, ok := m.(authn.Checker); ok {
			out = append(out, NamedChecker{Name: name, Checker: c})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NamedChecker is a module's checker and its configured name.
type NamedChecker struct {
	Name string
	authn.Checker
}

// OpenModule opens the configured module name alone, as Open does for
// every module; "sks check-config" uses it to report each module's errors
// instead of only the first.
func OpenModule(cfg *conf.Config, name string, log *slog.Logger) (authn.Module, error) {
	spec, ok := cfg.Modules[name]
	if !ok {
		return nil, fmt.Errorf("no [modules.%s] section", name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return openModule(cfg, spec, log.With("module", name))
}
