package email

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
)

// authVerdict is what the gateway concluded about a mail's sender.
type authVerdict struct {
	result string // "fail", or "" when nothing failed
	why    string
}

// checkAuth decides whether a mail failed sender authentication. From a
// trusted relay, the relay's Authentication-Results (the first one whose
// authserv-id is authserv_id) are believed: dmarc=fail, or dkim and spf
// both failing, is a failure. From any other client the gateway checks
// DKIM signatures itself and the From domain's DMARC policy (go-msgauth);
// SPF is not checked there (go-msgauth has no SPF), so a domain with a
// DMARC policy but no valid aligned DKIM signature fails.
func (t *Transport) checkAuth(ctx context.Context, raw []byte, trusted bool) authVerdict {
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
	lookup := func(domain string) ([]string, error) {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if t.lookupTXT != nil {
			return t.lookupTXT(c, domain)
		}
		return net.DefaultResolver.LookupTXT(c, domain)
	}
	aligned, dkimFail := false, ""
	if bytes.Contains(bytes.ToLower(hdr), []byte("dkim-signature:")) {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: 5})
		if err == nil {
			for _, v := range vs {
				if v.Err == nil && (strings.EqualFold(v.Domain, fromDomain) || strings.HasSuffix(strings.ToLower(fromDomain), "."+strings.ToLower(v.Domain))) {
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
	rec, err := dmarc.LookupWithOptions(fromDomain, &dmarc.LookupOptions{LookupTXT: lookup})
	if err != nil || rec == nil || rec.Policy == dmarc.PolicyNone {
		if dkimFail != "" {
			return authVerdict{result: "fail", why: dkimFail}
		}
		return authVerdict{}
	}
	why := fmt.Sprintf("DMARC policy %s of %s and no valid DKIM signature of that domain", rec.Policy, fromDomain)
	return authVerdict{result: "fail", why: why}
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
