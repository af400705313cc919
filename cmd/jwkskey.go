package cmd

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/jwtauth"
)

// runJWKSKey prints the public half of the configured JWT signing key in the
// form a verifier wants: the JWK as the JWKS publishes it, or with -raw the
// standard base64 of the raw 32-byte Ed25519 key, which is what
// ClusterCockpit's JWT_PUBLIC_KEY holds. -private adds the matching
// JWT_PRIVATE_KEY (base64 of the 64-byte Ed25519 private key), which
// cc-backend also requires before it verifies anything.
func runJWKSKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("jwks-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "/etc/sks/sks.toml", "configuration file with the [jwt] signing key")
	key := fs.String("key", "", "signing key file (instead of -c)")
	raw := fs.Bool("raw", false, "print base64 of the raw Ed25519 public key (ClusterCockpit's JWT_PUBLIC_KEY)")
	private := fs.Bool("private", false, "with -raw: also print JWT_PRIVATE_KEY, base64 of the raw Ed25519 private key (a secret)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return errors.New("usage: sks jwks-key [-c config | -key file] [-raw [-private]]")
	}
	var jc jwtauth.Config
	if *key != "" {
		jc.SigningKey = *key
	} else {
		cfg, err := conf.Load(*config)
		if err != nil {
			return err
		}
		jc = cfg.JWT
	}
	priv, jwk, err := jwtauth.LoadSigningKey(jc)
	if err != nil {
		return err
	}
	if !*raw {
		if *private {
			return errors.New("-private needs -raw")
		}
		b, err := json.Marshal(jwk)
		if err != nil {
			return fmt.Errorf("cannot encode jwk: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	edPriv, ok := priv.(ed25519.PrivateKey)
	if !ok {
		return fmt.Errorf("-raw needs an Ed25519 (EdDSA) key, this is a %s key; make one with sks gen-keypair -alg EdDSA", jwk.Algorithm)
	}
	if !*private {
		fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(edPriv.Public().(ed25519.PublicKey)))
		return nil
	}
	fmt.Fprintf(stdout, "JWT_PUBLIC_KEY=%q\nJWT_PRIVATE_KEY=%q\n",
		base64.StdEncoding.EncodeToString(edPriv.Public().(ed25519.PublicKey)),
		base64.StdEncoding.EncodeToString(edPriv))
	return nil
}
