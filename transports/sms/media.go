package sms

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"

	"switchboard/attachments"
	"switchboard/bridge"
)

// fetchMedium fetches one medium of an inbound MMS with the account's
// credentials and stores it with the attachment service, which serves it
// under an unguessable expiring URL. Twilio's media URLs need HTTP Basic
// auth and answer a redirect to the media host: the credentials go in the
// URL, so Go's client sends them to the API host only (a redirect to
// another host drops them). A medium over max_media_bytes is not fetched:
// the user gets a line saying so instead.
func (t *Transport) fetchMedium(ctx context.Context, in inboundText, i int, m medium) (bridge.Attachment, error) {
	if t.files == nil {
		return bridge.Attachment{}, fmt.Errorf("medium %d of %s: the gateway has no attachment service", i, in.SID)
	}
	u, err := url.Parse(m.URL)
	if err != nil {
		return bridge.Attachment{}, fmt.Errorf("medium %d of %s: %w", i, in.SID, err)
	}
	if api, err := url.Parse(t.cfg.APIURL); err == nil && u.Host == api.Host {
		u.User = url.UserPassword(t.cfg.AccountSID, t.cfg.AuthToken)
	}
	f, err := attachments.Fetch(ctx, t.mediaHTTP, u.String(), t.cfg.MaxMediaBytes, t.allowPrivate)
	if err != nil {
		if isTooLarge(err) {
			return bridge.Attachment{Desc: fmt.Sprintf("(an attachment of type %s was larger than %d bytes and was not fetched)", m.Type, t.cfg.MaxMediaBytes)}, nil
		}
		return bridge.Attachment{}, fmt.Errorf("medium %d of %s: %w", i, in.SID, err)
	}
	typ := m.Type
	if typ == "" {
		typ = f.Type
	}
	name := f.Name
	if name == "" || !strings.Contains(name, ".") {
		name = "media"
		if exts, _ := mime.ExtensionsByType(typ); len(exts) > 0 {
			name += exts[0]
		}
	}
	file, err := t.files.Put(ctx, name, typ, bytes.NewReader(f.Data), t.cfg.MaxMediaBytes)
	if err != nil {
		return bridge.Attachment{}, fmt.Errorf("storing medium %d of %s: %w", i, in.SID, err)
	}
	return bridge.Attachment{URL: file.URL, Type: file.Type, Size: file.Size}, nil
}

func isTooLarge(err error) bool { return errors.Is(err, attachments.ErrTooLarge) }
