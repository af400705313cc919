package jwtauth

import (
	"fmt"
	"slices"
	"sort"
)

// RoleClaims maps roles to claim values: claim name -> role -> values, as
// written in TOML:
//
//	[jwt.claims]
//	permissions = { "temporal-admins" = ["temporal-system:admin"], "devs" = ["default:write"] }
//
// A session JWT whose roles include "temporal-admins" then carries
// "permissions": ["temporal-system:admin"]. The role "*" matches every
// session. Values of every matching role are joined, sorted and
// deduplicated; a claim no role matches is left out.
type RoleClaims map[string]map[string][]string

// sessionClaimNames are set by SessionJWT itself; a mapping may not
// produce them, nor the registered claims in reserved.
var sessionClaimNames = map[string]bool{"realm": true, "source": true, "sid": true, "roles": true, "peer_type": true}

// validate checks claim names and values; where names the section.
func (rc RoleClaims) validate(where string) error {
	for claim, byRole := range rc {
		if claim == "" || reserved[claim] || sessionClaimNames[claim] {
			return fmt.Errorf("%s: claim %q cannot be mapped (it is set by the server)", where, claim)
		}
		for role, vals := range byRole {
			if role == "" {
				return fmt.Errorf("%s.%s: empty role name", where, claim)
			}
			if slices.Contains(vals, "") {
				return fmt.Errorf("%s.%s: role %q maps to an empty value", where, claim, role)
			}
		}
	}
	return nil
}

// claimMap holds [jwt.claims] and [jwt.realm_claims.<realm>].
type claimMap struct {
	global RoleClaims
	realms map[string]RoleClaims
}

func newClaimMap(cfg Config) (*claimMap, error) {
	if err := cfg.Claims.validate("claims"); err != nil {
		return nil, err
	}
	for realm, rc := range cfg.RealmClaims {
		if err := rc.validate("realm_claims." + realm); err != nil {
			return nil, err
		}
	}
	return &claimMap{global: cfg.Claims, realms: cfg.RealmClaims}, nil
}

// forSession returns the mapped claims for a session of realm with roles,
// or nil when nothing matches. A realm with its own realm_claims section
// uses only that section: group names mean different things in different
// directories, so a realm never inherits another mapping's grants.
func (m *claimMap) forSession(realm string, roles []string) map[string]any {
	if m == nil {
		return nil
	}
	rc, ok := m.realms[realm]
	if !ok {
		rc = m.global
	}
	var out map[string]any
	for claim, byRole := range rc {
		var vals []string
		for role, vs := range byRole {
			if role == "*" || slices.Contains(roles, role) {
				vals = append(vals, vs...)
			}
		}
		if len(vals) == 0 {
			continue
		}
		sort.Strings(vals)
		if out == nil {
			out = map[string]any{}
		}
		out[claim] = slices.Compact(vals)
	}
	return out
}
