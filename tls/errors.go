package tls

import (
	"errors"

	"github.com/sks-server/sks/secretfile"
)

// Sentinel errors for classifying failures with errors.Is. The messages
// returned by Load and Reload wrap them with the file and the step.
var (
	// ErrWrongPassword means a keystore password or key passphrase did not
	// fit (the keystore's integrity check or the key's decryption failed).
	ErrWrongPassword = errors.New("wrong password")
	// ErrKeyMismatch means the private key is not the certificate's.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrNoPrivateKey means the material holds certificates but no key.
	ErrNoPrivateKey = errors.New("no private key entry")
	// ErrNoCertificate means the material holds no certificate.
	ErrNoCertificate = errors.New("no certificate found")
	// ErrCorrupt means a file is truncated, damaged or of an unknown format.
	ErrCorrupt = errors.New("truncated or corrupt")
	// ErrUnsupported means a well-formed file uses something sks cannot read.
	ErrUnsupported = errors.New("unsupported")
	// ErrInsecurePermissions means a password file is accessible by group
	// or others. It is secretfile.ErrLooseMode, so either matches.
	ErrInsecurePermissions = secretfile.ErrLooseMode
	// ErrNoTerminal means -PP was asked for without a terminal to prompt on.
	ErrNoTerminal = errors.New("no terminal")
	// ErrConfig means the tls settings contradict each other.
	ErrConfig = errors.New("invalid tls configuration")
)
