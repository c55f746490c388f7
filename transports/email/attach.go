package email

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"

	"switchboard/attachments"
	"switchboard/bridge"
	"switchboard/transports/email/mailmsg"
)

// storeAttachment puts an inbound part on the attachment service and
// returns it as an OOB attachment; when it cannot, a note for the text
// says what was left out.
func (t *Transport) storeAttachment(ctx context.Context, p mailmsg.Part) (*bridge.Attachment, string) {
	name := p.Filename
	if name == "" {
		name = "attachment"
		if p.Inline {
			name = "image"
		}
	}
	size := p.Size
	if size == 0 {
		size = int64(len(p.Data))
	}
	if t.files == nil {
		return nil, fmt.Sprintf("[Attachment %q (%s, %d bytes) left out: the gateway has no attachment store]", name, p.ContentType, size)
	}
	if p.Truncated {
		return nil, fmt.Sprintf("[Attachment %q (%s) left out: bigger than max_message_bytes]", name, p.ContentType)
	}
	f, err := t.files.Put(ctx, name, p.ContentType, bytes.NewReader(p.Data), t.cfg.MaxMessageBytes)
	if err != nil {
		t.log.Warn("storing an attachment failed", "name", name, "err", err)
		return nil, fmt.Sprintf("[Attachment %q (%s, %d bytes) could not be stored]", name, p.ContentType, size)
	}
	return &bridge.Attachment{URL: f.URL, Desc: f.Name, Type: f.Type, Size: f.Size}, ""
}

// fetchAttachments downloads the OOB URLs of an outbound message (what
// clients send after an HTTP upload) into parts, within max_message_bytes.
func (t *Transport) fetchAttachments(ctx context.Context, atts []bridge.Attachment) ([]mailmsg.Part, []string, error) {
	var parts []mailmsg.Part
	budget := t.cfg.MaxMessageBytes
	for _, a := range atts {
		if a.URL == "" {
			continue
		}
		f, err := attachments.Fetch(ctx, nil, a.URL, budget, t.allowPrivate)
		if err != nil {
			if errors.Is(err, attachments.ErrTooLarge) {
				return nil, nil, bridge.Errorf(bridge.PolicyViolation, "The file %s is too big: max_message_bytes is %d for the whole mail.", a.URL, t.cfg.MaxMessageBytes)
			}
			return nil, nil, bridge.Errorf(bridge.NotAcceptable, "The file %s could not be fetched: %v", a.URL, err)
		}
		budget -= int64(len(f.Data))
		name := f.Name
		if name == "" {
			name = path.Base(a.URL)
		}
		typ := f.Type
		if typ == "" {
			typ = a.Type
		}
		parts = append(parts, mailmsg.Part{Filename: name, ContentType: typ, Data: f.Data})
	}
	return parts, nil, nil
}
