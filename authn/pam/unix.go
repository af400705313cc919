package pam

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// ShadowFile is the file pam_unix reads password hashes from.
var ShadowFile = "/etc/shadow"

// ErrShadowUnreadable means this process cannot read ShadowFile, so pam_unix
// can only check the password of the user the process runs as (through the
// unix_chkpwd helper) and refuses everyone else as if the password were
// wrong.
var ErrShadowUnreadable = errors.New("cannot read " + "/etc/shadow")

// ShadowFix is the advice logged with ErrShadowUnreadable.
const ShadowFix = "pam_unix can only check this process's own user's password: run sks as root (in the unit: DynamicUser=no, User=root), " +
	"or give it read access to /etc/shadow (SupplementaryGroups=shadow, and NoNewPrivileges=no for unix_chkpwd), or use an ldap or kerberos module"

// CheckShadow returns nil when this process can read ShadowFile.
func CheckShadow() error {
	f, err := os.Open(ShadowFile)
	if err != nil {
		return errors.Join(ErrShadowUnreadable, err)
	}
	f.Close()
	return nil
}

// UsesPamUnix reports whether the auth stack of service (a file in dir)
// uses pam_unix, following "@include", "include" and "substack" lines as
// libpam does (Debian's services include common-auth).
func UsesPamUnix(dir, service string) bool {
	return usesPamUnix(dir, service, 0)
}

func usesPamUnix(dir, service string, depth int) bool {
	if depth > 8 || !ValidServiceName(service) && service != "other" {
		return false
	}
	path := filepath.Join(dir, service)
	if strings.HasPrefix(service, "/") {
		path = service
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "@include" {
			if len(fields) > 1 && usesPamUnix(dir, fields[1], depth+1) {
				return true
			}
			continue
		}
		typ := strings.TrimPrefix(fields[0], "-")
		if typ != "auth" || len(fields) < 3 {
			continue
		}
		control, rest := fields[1], fields[2:]
		if strings.HasPrefix(control, "[") {
			// [value=action ...] may span fields.
			for len(rest) > 0 && !strings.HasSuffix(control, "]") {
				control, rest = control+" "+rest[0], rest[1:]
			}
			if len(rest) == 0 {
				continue
			}
		}
		if control == "include" || control == "substack" {
			if usesPamUnix(dir, rest[0], depth+1) {
				return true
			}
			continue
		}
		if filepath.Base(rest[0]) == "pam_unix.so" {
			return true
		}
	}
	return false
}
