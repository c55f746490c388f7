package email

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// authVerdict is what the gateway concluded about a mail's sender.
type authVerdict struct {
	result string // "fail", or "" when nothing failed
	why    string
}

// dnsResolver is what sender authentication asks DNS (net.Resolver;
// tests answer from a map).
type dnsResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// authClient is what the SMTP session knows of the client.
type authClient struct {
	ip       netip.Addr
	helo     string
	mailFrom string // the envelope sender ("" for bounces)
}

// checkAuth decides whether a mail failed sender authentication. From a
// trusted relay, the relay's Authentication-Results (the first one whose
// authserv-id is authserv_id) are believed (see verdictFromAR). From any
// other client the gateway checks SPF (blitiri.com.ar/go/spf: the client
// IP against the envelope sender's domain, or the HELO name's for a
// bounce), the DKIM signatures and the From domain's DMARC policy
// (go-msgauth) itself. A domain with a DMARC policy other than none
// passes with a valid DKIM signature or an SPF pass whose domain is
// aligned with From (same organizational domain, RFC 7489 relaxed
// alignment), and fails without either; a domain without one fails
// when SPF fails and no valid DKIM signature of the From domain rescues
// it, or when a signature is broken.
func (t *Transport) checkAuth(ctx context.Context, raw []byte, trusted bool, client authClient) authVerdict {
	hdr := headerBlock(raw)
	if trusted {
		if t.cfg.AuthservID == "" {
			return authVerdict{}
		}
		return verdictFromAR(hdr, t.cfg.AuthservID)
	}
	fromDomain := ""
	if a := headerFrom(raw); a != "" {
		fromDomain = a[strings.LastIndexByte(a, '@')+1:]
	}
	if fromDomain == "" {
		return authVerdict{}
	}
	res := t.resolver
	if res == nil {
		res = net.DefaultResolver
	}
	lookup := func(domain string) ([]string, error) {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return res.LookupTXT(c, domain)
	}
	aligned, dkimFail := false, ""
	if bytes.Contains(bytes.ToLower(hdr), []byte("dkim-signature:")) {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: 5})
		if err == nil {
			for _, v := range vs {
				if v.Err == nil && sameOrg(v.Domain, fromDomain) {
					aligned = true
				} else if v.Err != nil && !dkim.IsTempFail(v.Err) {
					dkimFail = v.Err.Error()
				}
			}
		}
	}
	if aligned {
		return authVerdict{}
	}
	spfResult, spfDomain := t.checkSPF(ctx, res, client)
	spfAligned := spfResult == spf.Pass && sameOrg(spfDomain, fromDomain)
	rec, err := dmarc.LookupWithOptions(fromDomain, &dmarc.LookupOptions{LookupTXT: lookup})
	if err == nil && rec != nil && rec.Policy != dmarc.PolicyNone {
		if spfAligned {
			return authVerdict{}
		}
		why := fmt.Sprintf("DMARC policy %s of %s and neither a valid DKIM signature of that domain nor an aligned SPF pass", rec.Policy, fromDomain)
		if spfResult == spf.Fail {
			why += fmt.Sprintf(" (SPF of %s fails for %s)", spfDomain, client.ip)
		}
		return authVerdict{result: "fail", why: why}
	}
	switch {
	case dkimFail != "":
		return authVerdict{result: "fail", why: dkimFail}
	case spfResult == spf.Fail:
		return authVerdict{result: "fail", why: fmt.Sprintf("SPF of %s does not allow %s to send its mail", spfDomain, client.ip)}
	}
	return authVerdict{}
}

// checkSPF evaluates SPF for the envelope sender's domain (the HELO name
// for a bounce) and returns the result and the domain checked.
func (t *Transport) checkSPF(ctx context.Context, res dnsResolver, c authClient) (spf.Result, string) {
	if !c.ip.IsValid() {
		return spf.None, ""
	}
	domain := c.helo
	if at := strings.LastIndexByte(c.mailFrom, '@'); at >= 0 {
		domain = c.mailFrom[at+1:]
	}
	if domain == "" {
		return spf.None, ""
	}
	sender := c.mailFrom
	if sender == "" {
		sender = "postmaster@" + c.helo
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := spf.CheckHostWithSender(net.IP(c.ip.Unmap().AsSlice()), c.helo, sender, spf.WithContext(sctx), spf.WithResolver(res))
	if err != nil && t.log != nil {
		t.log.Debug("SPF check", "domain", domain, "ip", c.ip.String(), "result", string(r), "err", err)
	}
	return r, strings.ToLower(domain)
}

// sameOrg reports whether two domains have the same organizational
// domain (the public suffix list's registrable domain), which is DMARC's
// relaxed alignment.
func sameOrg(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSuffix(a, ".")), strings.ToLower(strings.TrimSuffix(b, "."))
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	oa, err1 := publicsuffix.EffectiveTLDPlusOne(a)
	ob, err2 := publicsuffix.EffectiveTLDPlusOne(b)
	return err1 == nil && err2 == nil && oa == ob
}

// verdictFromAR reads the trusted Authentication-Results header.
func verdictFromAR(hdr []byte, authserv string) authVerdict {
	for _, v := range headerValues(hdr, "authentication-results") {
		id, results, err := authres.Parse(v)
		if err != nil || !strings.EqualFold(id, authserv) {
			continue
		}
		var dkimFail, spfFail bool
		var dkimSeen, spfSeen bool
		for _, r := range results {
			switch r := r.(type) {
			case *authres.DMARCResult:
				if r.Value == authres.ResultFail {
					return authVerdict{result: "fail", why: "DMARC fail for " + r.From}
				}
				if r.Value == authres.ResultPass {
					return authVerdict{}
				}
			case *authres.DKIMResult:
				dkimSeen = true
				dkimFail = dkimFail || r.Value == authres.ResultFail
			case *authres.SPFResult:
				spfSeen = true
				spfFail = spfFail || r.Value == authres.ResultFail
			}
		}
		if dkimSeen && spfSeen && dkimFail && spfFail {
			return authVerdict{result: "fail", why: "DKIM and SPF fail"}
		}
		return authVerdict{}
	}
	return authVerdict{}
}

// headerBlock returns the header section of a raw message.
func headerBlock(raw []byte) []byte {
	if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
		return raw[:i+2]
	}
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		return raw[:i+1]
	}
	return raw
}

// headerValues returns the unfolded values of a header field, in order.
func headerValues(hdr []byte, name string) []string {
	var out []string
	lines := strings.Split(strings.ReplaceAll(string(hdr), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		c := strings.IndexByte(l, ':')
		if c <= 0 || !strings.EqualFold(strings.TrimSpace(l[:c]), name) {
			continue
		}
		v := l[c+1:]
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			v += " " + strings.TrimSpace(lines[i])
		}
		out = append(out, strings.TrimSpace(v))
	}
	return out
}
