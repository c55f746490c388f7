package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"switchboard/tests/testbed"
)

// biboumi is a running Biboumi (the Debian package), started in the
// foreground with its own config file and SQLite database.
type biboumi struct {
	domain  string
	dir     string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// startBiboumi writes a config for domain (a component of Prosody on
// componentAddr) and runs `biboumi FILE`. It is killed in tb's cleanup.
func startBiboumi(tb *testbed.Standalone, dir, domain, secret, componentPort, admin string) *biboumi {
	bin := testbed.RequireBinary(tb, "biboumi", "/usr/bin/biboumi")
	b := &biboumi{domain: domain, dir: dir, logPath: filepath.Join(dir, "biboumi.log"), done: make(chan struct{})}
	cfg := strings.Join([]string{
		"hostname=" + domain,
		"password=" + secret,
		"xmpp_server_ip=127.0.0.1",
		"port=" + componentPort,
		"admin=" + admin,
		"db_name=" + filepath.Join(dir, "biboumi.sqlite"),
		"realname_customization=true",
		"realname_from_jid=false",
		"log_file=",
		"log_level=2", // warnings and errors
		"identd_port=0",
		"policy_directory=" + dir,
		"",
	}, "\n")
	cfgPath := filepath.Join(dir, "biboumi.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatalf("biboumi: %v", err)
	}
	out, err := os.Create(b.logPath)
	if err != nil {
		tb.Fatalf("biboumi: %v", err)
	}
	b.cmd = exec.Command(bin, cfgPath)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = out, out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		tb.Fatalf("biboumi: starting %s: %v", bin, err)
	}
	go func() {
		_ = b.cmd.Wait()
		out.Close()
		close(b.done)
	}()
	tb.Cleanup(func() {
		// SIGTERM: it QUITs its IRC connections and exits within ~2 s.
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
	})
	return b
}

func (b *biboumi) pid() int { return b.cmd.Process.Pid }

func (b *biboumi) running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// dataForm is a jabber:x:data form as Biboumi sends it.
type dataForm struct {
	Fields []formField `xml:"field"`
}

type formField struct {
	Var    string   `xml:"var,attr"`
	Type   string   `xml:"type,attr"`
	Values []string `xml:"value"`
}

// commandReply is an ad-hoc command reply.
type commandReply struct {
	Command struct {
		Node      string   `xml:"node,attr"`
		SessionID string   `xml:"sessionid,attr"`
		Status    string   `xml:"status,attr"`
		Form      dataForm `xml:"x"`
		Note      string   `xml:"note"`
	} `xml:"command"`
}

// adhocConfigure runs Biboumi's `configure` command on target: it fetches
// the form and submits every field back, with the values in set replacing
// the form's. Biboumi resets every field a submit leaves out, so all are
// sent.
func adhocConfigure(c *xmppClient, target string, set map[string][]string) error {
	const ns = "http://jabber.org/protocol/commands"
	r, err := c.iq("<iq type='set' id='ID' to='"+xmlEscape(target)+"'><command xmlns='"+ns+"' node='configure' action='execute'/></iq>", 20*time.Second)
	if err != nil {
		return err
	}
	if r.typ != "result" {
		return fmt.Errorf("configure on %s: %s", target, r.raw)
	}
	var rep commandReply
	if err := xml.Unmarshal(r.raw, &rep); err != nil {
		return fmt.Errorf("configure on %s: %v in %s", target, err, r.raw)
	}
	if rep.Command.SessionID == "" || len(rep.Command.Form.Fields) == 0 {
		return fmt.Errorf("configure on %s: no form: %s", target, r.raw)
	}
	seen := map[string]bool{}
	var b strings.Builder
	fmt.Fprintf(&b, "<iq type='set' id='ID' to='%s'><command xmlns='%s' node='configure' sessionid='%s' action='complete'><x xmlns='jabber:x:data' type='submit'>",
		xmlEscape(target), ns, xmlEscape(rep.Command.SessionID))
	writeField := func(name string, values []string) {
		fmt.Fprintf(&b, "<field var='%s'>", xmlEscape(name))
		for _, v := range values {
			fmt.Fprintf(&b, "<value>%s</value>", xmlEscape(v))
		}
		b.WriteString("</field>")
	}
	for _, f := range rep.Command.Form.Fields {
		if f.Var == "" || f.Type == "fixed" {
			continue
		}
		seen[f.Var] = true
		if v, ok := set[f.Var]; ok {
			writeField(f.Var, v)
			continue
		}
		writeField(f.Var, f.Values)
	}
	for name := range set {
		if !seen[name] {
			return fmt.Errorf("configure on %s: the form has no field %q: %s", target, name, r.raw)
		}
	}
	b.WriteString("</x></command></iq>")
	r, err = c.iq(b.String(), 20*time.Second)
	if err != nil {
		return err
	}
	if r.typ != "result" {
		return fmt.Errorf("configure submit on %s: %s", target, r.raw)
	}
	if err := xml.Unmarshal(r.raw, &rep); err == nil && rep.Command.Status != "" && rep.Command.Status != "completed" {
		return fmt.Errorf("configure submit on %s: status %s: %s", target, rep.Command.Status, r.raw)
	}
	return nil
}
