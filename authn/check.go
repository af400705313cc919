package authn

import "context"

// Checker is implemented by login modules that can tell whether their
// backend is reachable without logging anyone in: an LDAP module dials and
// binds as its service account, a Kerberos module asks the KDC. /readyz
// and "sks check-config --connect" call it. Modules without a network
// backend (PAM, static) do not implement it and count as ready.
type Checker interface {
	// Check returns nil when the backend answers, and an error saying which
	// step failed otherwise. It returns by ctx's deadline.
	Check(ctx context.Context) error
}
