package email

import (
	"context"
	"fmt"

	"switchboard/bridge"
	"switchboard/transports/email/mailmsg"
)

// storeAttachment would put an inbound part on the attachment service;
// until that service is wired, the part is named in the message instead.
func (t *Transport) storeAttachment(_ context.Context, p mailmsg.Part) (*bridge.Attachment, string) {
	name := p.Filename
	if name == "" {
		name = "unnamed"
	}
	size := p.Size
	if size == 0 {
		size = int64(len(p.Data))
	}
	return nil, fmt.Sprintf("[Attachment %q (%s, %d bytes) not shown: this gateway has no attachment store yet]", name, p.ContentType, size)
}

// fetchAttachments would download OOB URLs into parts; until the
// attachment service is wired, the URLs stay in the text.
func (t *Transport) fetchAttachments(_ context.Context, atts []bridge.Attachment) ([]mailmsg.Part, []string, error) {
	return nil, nil, nil
}
