package jwtauth

import (
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// exampleTOML is the [jwt] section documented in the README.
const exampleTOML = `
[jwt]
signing_key = "/etc/sks/jwt/jwt-es256-Xk3v9QaB.key"
# signing_key_passphrase = "..."
algorithm = "ES256"
issuer = "https://sks.example.org"
audience = ["temporal", "clustercockpit"]
session_ttl = "5m"
max_ttl = "24h"
master_token_file = "/etc/sks/master-token"
api_keys_file = "/etc/sks/keys.properties"
hmac_max_ahead = "60s"

[[jwt.retired_keys]]
public_key = "/etc/sks/jwt/jwt-es256-Q1w2e3r4.pub"
retired_at = 2025-06-01T12:00:00Z
`

func TestExampleTOML(t *testing.T) {
	var doc struct {
		JWT Config `toml:"jwt"`
	}
	md, err := toml.Decode(exampleTOML, &doc)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys %v", u)
	}
	c := doc.JWT
	if c.SessionTTL.Duration != 5*time.Minute || c.MaxTTL.Duration != 24*time.Hour || c.HMACMaxAhead.Duration != time.Minute ||
		len(c.Audience) != 2 || len(c.RetiredKeys) != 1 || !c.RetiredKeys[0].RetiredAt.Equal(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}

// claimsTOML is the roles-to-claims example of the README.
const claimsTOML = `
[jwt.claims]                       # every realm without its own table below
permissions = { "temporal-admins" = ["temporal-system:admin"], "*" = ["default:read"] }
[jwt.realm_claims.corp]            # realm corp: used instead of [jwt.claims]
permissions = { "staff" = ["temporal-system:admin"], "devs" = ["default:read", "default:write"] }
`

func TestClaimsTOML(t *testing.T) {
	var doc struct {
		JWT Config `toml:"jwt"`
	}
	md, err := toml.Decode(claimsTOML, &doc)
	if err != nil {
		t.Fatal(err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("undecoded keys %v", u)
	}
	m, err := newClaimMap(doc.JWT)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.forSession("other", []string{"temporal-admins"}); len(got["permissions"].([]string)) != 2 {
		t.Errorf("realm other, temporal-admins: %v", got)
	}
	if got := m.forSession("corp", []string{"devs"}); len(got["permissions"].([]string)) != 2 {
		t.Errorf("realm corp, devs: %v", got)
	}
	if got := m.forSession("corp", []string{"temporal-admins"}); got != nil {
		t.Errorf("realm corp inherits [jwt.claims]: %v", got)
	}
}
