package tls

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/sks-server/sks/pkcs8"
)

// format is what a keystore file turned out to be, judged by its content
// rather than its name (the original took any name after -tls).
type format int

const (
	formatUnknown format = iota
	formatJKS
	formatJCEKS
	formatPKCS12
	formatPEM
)

func (f format) String() string {
	switch f {
	case formatJKS:
		return "JKS"
	case formatJCEKS:
		return "JCEKS"
	case formatPKCS12:
		return "PKCS12"
	case formatPEM:
		return "PEM"
	}
	return "unknown"
}

const (
	jksMagic   = 0xFEEDFEED
	jceksMagic = 0xCECECECE
)

// detectFormat tells JKS (magic 0xFEEDFEED), JCEKS (0xCECECECE), PKCS12
// (a DER SEQUENCE) and PEM (a "-----BEGIN " line) apart.
func detectFormat(b []byte) format {
	if len(b) >= 4 {
		switch binary.BigEndian.Uint32(b) {
		case jksMagic:
			return formatJKS
		case jceksMagic:
			return formatJCEKS
		}
	}
	// PKCS12 is the only DER keystore: an ASN.1 SEQUENCE, whose length is
	// in long form for anything bigger than 127 bytes. Checking that keeps
	// a PEM file with a preamble starting with "0" from counting as DER.
	if len(b) >= 2 && b[0] == 0x30 && b[1] >= 0x80 {
		return formatPKCS12
	}
	if bytes.Contains(b, []byte("-----BEGIN ")) {
		return formatPEM
	}
	if len(b) >= 2 && b[0] == 0x30 {
		return formatPKCS12
	}
	return formatUnknown
}

// bundle is key material decoded from one of the formats, before it is
// checked and turned into a tls.Certificate.
type bundle struct {
	key   crypto.PrivateKey
	chain []*x509.Certificate // leaf first
}

// decodePKCS12 decodes a .p12/.pfx file: OpenSSL 3's default
// (PBES2/AES-256, PBKDF2), the legacy 3DES/RC2 bundles, and Java's.
func decodePKCS12(b []byte, password string) (*bundle, error) {
	key, leaf, cas, err := pkcs12.DecodeChain(b, password)
	if err != nil {
		var notImpl pkcs12.NotImplementedError
		switch {
		case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
			return nil, ErrWrongPassword
		case errors.As(err, &notImpl):
			return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
		}
		// A bundle that decodes as a trust store has certificates but no key.
		if certs, err2 := pkcs12.DecodeTrustStore(b, password); err2 == nil && len(certs) > 0 {
			return nil, fmt.Errorf("%w: the bundle holds %d certificate(s) but no private key entry", ErrNoPrivateKey, len(certs))
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &bundle{key: key, chain: orderChain(leaf, cas)}, nil
}

// orderChain returns leaf followed by the certificates of others that
// issue it, its issuer and so on, in that order. PKCS12 bundles keep no
// order. A self-signed root ends the chain and is left out: clients must
// already have it, and sending it only costs bytes (RFC 8446 4.4.2).
// Certificates that are not on the leaf's path are not served.
func orderChain(leaf *x509.Certificate, others []*x509.Certificate) []*x509.Certificate {
	chain := []*x509.Certificate{leaf}
	used := make([]bool, len(others))
	cur := leaf
	for len(chain) <= len(others) {
		next := -1
		for i, c := range others {
			if !used[i] && bytes.Equal(c.RawSubject, cur.RawIssuer) && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		c := others[next]
		if bytes.Equal(c.RawSubject, c.RawIssuer) {
			break // self-signed root
		}
		chain = append(chain, c)
		cur = c
	}
	return chain
}

// checkJKS walks the structure of a JKS file and reports where it is
// truncated or malformed, so that a damaged file is not mistaken for a
// wrong password (the digest at the end checks both), and so that a length
// field in a damaged file cannot make keystore-go allocate gigabytes.
// It returns the number of private key entries.
func checkJKS(b []byte) (keys int, err error) {
	off := 0
	need := func(n uint64, what string) error {
		if uint64(len(b)-off) < n {
			return fmt.Errorf("%w: file ends at byte %d inside the %s (needs %d more bytes)", ErrCorrupt, len(b), what, n-uint64(len(b)-off))
		}
		return nil
	}
	u16 := func(what string) (int, error) {
		if err := need(2, what); err != nil {
			return 0, err
		}
		v := binary.BigEndian.Uint16(b[off:])
		off += 2
		return int(v), nil
	}
	u32 := func(what string) (uint32, error) {
		if err := need(4, what); err != nil {
			return 0, err
		}
		v := binary.BigEndian.Uint32(b[off:])
		off += 4
		return v, nil
	}
	skip := func(n uint64, what string) error {
		if err := need(n, what); err != nil {
			return err
		}
		off += int(n)
		return nil
	}
	blob := func(what string) error { // u32 length + bytes
		n, err := u32(what + " length")
		if err != nil {
			return err
		}
		return skip(uint64(n), what)
	}
	utf := func(what string) error { // Java modified UTF-8: u16 length + bytes
		n, err := u16(what + " length")
		if err != nil {
			return err
		}
		return skip(uint64(n), what)
	}

	magic, err := u32("magic number")
	if err != nil {
		return 0, err
	}
	if magic != jksMagic {
		return 0, fmt.Errorf("%w: not a JKS file (magic %#08x)", ErrCorrupt, magic)
	}
	version, err := u32("version")
	if err != nil {
		return 0, err
	}
	if version != 1 && version != 2 {
		return 0, fmt.Errorf("%w: unknown JKS version %d", ErrCorrupt, version)
	}
	count, err := u32("entry count")
	if err != nil {
		return 0, err
	}
	cert := func(what string) error {
		if version == 2 {
			if err := utf(what + " type"); err != nil {
				return err
			}
		}
		return blob(what)
	}
	for i := uint32(0); i < count; i++ {
		tag, err := u32("entry tag")
		if err != nil {
			return 0, err
		}
		if err := utf("alias"); err != nil {
			return 0, err
		}
		if err := skip(8, "timestamp"); err != nil {
			return 0, err
		}
		switch tag {
		case 1: // private key entry
			keys++
			if err := blob("protected private key"); err != nil {
				return 0, err
			}
			n, err := u32("chain length")
			if err != nil {
				return 0, err
			}
			for j := uint32(0); j < n; j++ {
				if err := cert("chain certificate"); err != nil {
					return 0, err
				}
			}
		case 2: // trusted certificate entry
			if err := cert("trusted certificate"); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("%w: unknown JKS entry tag %d at byte %d", ErrCorrupt, tag, off-4)
		}
	}
	if err := skip(sha1.Size, "integrity digest"); err != nil {
		return 0, err
	}
	if off != len(b) {
		return 0, fmt.Errorf("%w: %d bytes of trailing data after the JKS digest", ErrCorrupt, len(b)-off)
	}
	return keys, nil
}

// jksDigestOK checks the keystore's integrity digest, which is how Java
// (and we) tell a wrong password: SHA-1 over the password as UTF-16BE,
// the words "Mighty Aphrodite" and the file up to the digest.
func jksDigestOK(b []byte, password string) bool {
	if len(b) < sha1.Size {
		return false
	}
	h := sha1.New()
	for _, c := range utf16.Encode([]rune(password)) {
		h.Write([]byte{byte(c >> 8), byte(c)})
	}
	h.Write([]byte("Mighty Aphrodite"))
	h.Write(b[:len(b)-sha1.Size])
	return bytes.Equal(h.Sum(nil), b[len(b)-sha1.Size:])
}

// latin1 converts password to the byte-per-character form keystore-go
// expects (it widens each byte to a UTF-16 unit). Characters beyond
// U+00FF cannot be expressed that way.
func latin1(password string) ([]byte, error) {
	out := make([]byte, 0, len(password))
	for _, r := range password {
		if r > 0xff {
			return nil, fmt.Errorf("%w: a keystore password with characters beyond Latin-1 is not supported for JKS", ErrUnsupported)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

// decodeJKS decodes a Java keystore and takes its private key entry (the
// alphabetically first if there are several) with the entry's chain. As
// in the original, the key is protected by the keystore password.
func decodeJKS(b []byte, password string) (*bundle, string, error) {
	keys, err := checkJKS(b)
	if err != nil {
		return nil, "", err
	}
	if !jksDigestOK(b, password) {
		return nil, "", ErrWrongPassword
	}
	if keys == 0 {
		return nil, "", fmt.Errorf("%w: the keystore holds only trusted certificates", ErrNoPrivateKey)
	}
	pw, err := latin1(password)
	if err != nil {
		return nil, "", err
	}
	ks := keystore.New()
	if err := ks.Load(bytes.NewReader(b), pw); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	aliases := ks.Aliases()
	slices.Sort(aliases)
	var alias string
	for _, a := range aliases {
		if ks.IsPrivateKeyEntry(a) {
			alias = a
			break
		}
	}
	e, err := ks.GetPrivateKeyEntry(alias, pw)
	if err != nil {
		return nil, "", fmt.Errorf("%w: cannot decrypt private key entry %q with the keystore password (sks, like the original, expects one password for keystore and key; set it with keytool -keypasswd): %v",
			ErrWrongPassword, alias, err)
	}
	key, err := x509.ParsePKCS8PrivateKey(e.PrivateKey)
	if err != nil {
		return nil, "", fmt.Errorf("%w: private key entry %q: %v", ErrCorrupt, alias, err)
	}
	if len(e.CertificateChain) == 0 {
		return nil, "", fmt.Errorf("%w: private key entry %q has no certificate", ErrCorrupt, alias)
	}
	var chain []*x509.Certificate
	for i, c := range e.CertificateChain {
		cert, err := x509.ParseCertificate(c.Content)
		if err != nil {
			return nil, "", fmt.Errorf("%w: certificate %d of entry %q: %v", ErrCorrupt, i, alias, err)
		}
		chain = append(chain, cert)
	}
	// keytool stores the whole path up to the root; serve it like PKCS12.
	return &bundle{key: key, chain: orderChain(chain[0], chain[1:])}, alias, nil
}

// parseCertsPEM returns the CERTIFICATE blocks of b in order.
func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrCorrupt, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// parseKeyPEM returns the first private key in b. An encrypted key, in
// either the PKCS#8 "ENCRYPTED PRIVATE KEY" form or the legacy
// "Proc-Type: 4,ENCRYPTED" form, is decrypted with the passphrase that
// pass returns; pass is only called for an encrypted key, so that -PP does
// not prompt for a key that needs no passphrase. It returns
// ErrNoPrivateKey if b has no key.
func parseKeyPEM(b []byte, pass func() ([]byte, error)) (crypto.PrivateKey, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, ErrNoPrivateKey
		}
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: PKCS#8 private key: %v", ErrCorrupt, err)
			}
			return k, nil
		case "ENCRYPTED PRIVATE KEY":
			passphrase, err := pass()
			if err != nil {
				return nil, err
			}
			k, err := pkcs8.Decrypt(blk.Bytes, passphrase)
			if errors.Is(err, pkcs8.ErrWrongPassphrase) {
				return nil, ErrWrongPassword
			}
			return k, err
		case "RSA PRIVATE KEY", "EC PRIVATE KEY":
			der := blk.Bytes
			// Legacy "Proc-Type: 4,ENCRYPTED" keys (MD5-based KDF, no
			// integrity) are deprecated in crypto/x509 but still found in
			// the wild, and the stdlib remains the only well-kept decoder.
			if x509.IsEncryptedPEMBlock(blk) { //nolint:staticcheck
				passphrase, err := pass()
				if err != nil {
					return nil, err
				}
				der, err = x509.DecryptPEMBlock(blk, passphrase) //nolint:staticcheck
				if errors.Is(err, x509.IncorrectPasswordError) {
					return nil, ErrWrongPassword
				}
				if err != nil {
					return nil, fmt.Errorf("%w: encrypted %s: %v", ErrCorrupt, blk.Type, err)
				}
			}
			var k crypto.PrivateKey
			var err error
			if blk.Type == "RSA PRIVATE KEY" {
				k, err = x509.ParsePKCS1PrivateKey(der)
			} else {
				k, err = x509.ParseECPrivateKey(der)
			}
			if err != nil {
				if x509.IsEncryptedPEMBlock(blk) { //nolint:staticcheck
					return nil, ErrWrongPassword // decrypted to garbage
				}
				return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, blk.Type, err)
			}
			return k, nil
		}
	}
}
