package tests

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/tests/testbed"
)

// slixPython is Debian's interpreter, which sees python3-slixmpp (a
// pyenv or venv python3 earlier on PATH would not).
const slixPython = "/usr/bin/python3"

// TestSlixmppClient drives the gateway with a stock third-party XMPP client
// (Debian's slixmpp): disco, in-band registration with a data form,
// jabber:iq:gateway, the command list, a MUC join of an IRC channel and a
// message both ways with a raw IRC user.
func TestSlixmppClient(t *testing.T) {
	py := testbed.RequireBinary(t, slixPython)
	if err := exec.Command(py, "-c", "import slixmpp").Run(); err != nil {
		if testbed.InCI() {
			t.Fatal("python3-slixmpp is not installed (make deps installs it)")
		}
		t.Skip("python3-slixmpp is not installed (make deps installs it)")
	}
	s := newStack(t, stackOptions{})
	irc := s.irc("slixirc")
	irc.Join("#slix")

	host, port, _ := strings.Cut(s.prosody.C2SAddr(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	script, _ := filepath.Abs("interop/slix_client.py")
	cmd := exec.CommandContext(ctx, py, script, "bob@localhost/slix", password, host, port, ircDomain, room("#slix"), "slixbob")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if sc.Text() == "ready" {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
		irc.Expect(t, isPrivmsg("#slix", "hello from slixmpp"), wait)
		irc.Privmsg("#slix", "hello from irc")
	case <-done:
	}
	<-done
	err = cmd.Wait()
	out := strings.Join(lines, "\n")
	t.Logf("slixmpp client:\n%s", out)
	if err != nil || strings.Contains(out, "\nfail ") || strings.HasPrefix(out, "fail ") || !strings.Contains(out, "ok receive") {
		t.Fatalf("the slixmpp client failed (%v):\n%s\nstderr:\n%s", err, out, stderr.String())
	}
}
