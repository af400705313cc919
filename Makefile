# sks: build and install. "make install" puts the binary, the systemd
# units, an example configuration (only if none is there yet), the PAM
# service file and the documentation in place:
#
#   make && sudo make install
#   sudo systemctl daemon-reload && sudo systemctl enable --now sks.socket sks.service
#
# PREFIX (default /usr/local) and DESTDIR (for packaging) work as usual;
# BIN names an already built binary to install instead of building one.

PREFIX     ?= /usr/local
DESTDIR    ?=
BIN        ?= sks
GO         ?= go
SYSCONFDIR ?= /etc
UNITDIR    ?= $(SYSCONFDIR)/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/sks

.PHONY: all build install uninstall check test

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sks

install:
	@test -x $(BIN) || $(MAKE) build
	install -d -m 0755 $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/pam.d
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/sks
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sks
	sed 's|/usr/local/|$(PREFIX)/|g' dist/sks.service > $(DESTDIR)$(UNITDIR)/sks.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/sks.service
	install -m 0644 dist/sks.socket $(DESTDIR)$(UNITDIR)/sks.socket
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -d -m 0755 $(DESTDIR)$(DOCDIR)/docs
	install -m 0644 docs/web.md $(DESTDIR)$(DOCDIR)/docs/web.md
	install -m 0644 dist/sks.toml $(DESTDIR)$(DOCDIR)/sks.toml.example
	@# Never overwrite an administrator's files.
	test -e $(DESTDIR)$(SYSCONFDIR)/sks/sks.toml || install -m 0644 dist/sks.toml $(DESTDIR)$(SYSCONFDIR)/sks/sks.toml
	test -e $(DESTDIR)$(SYSCONFDIR)/pam.d/sks || install -m 0644 dist/sks.pam $(DESTDIR)$(SYSCONFDIR)/pam.d/sks

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/sks $(DESTDIR)$(UNITDIR)/sks.service $(DESTDIR)$(UNITDIR)/sks.socket
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "left in place: $(SYSCONFDIR)/sks, $(SYSCONFDIR)/pam.d/sks, /var/lib/sks"

# check: the installed configuration, as the server would load it.
check:
	$(DESTDIR)$(PREFIX)/bin/sks check-config -c $(DESTDIR)$(SYSCONFDIR)/sks/sks.toml

test:
	./scripts/test.sh
