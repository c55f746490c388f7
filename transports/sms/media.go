package sms

import (
	"context"
	"fmt"

	"switchboard/bridge"
)

// mediaService stores inbound MMS media and serves them (the shared
// attachment service).
type mediaService interface {
	run(ctx context.Context)
}

func newMediaService(env bridge.Env) mediaService { return nil }

// fetchMedium fetches one medium of an inbound MMS with the account's
// credentials and stores it with the attachment service.
func (t *Transport) fetchMedium(ctx context.Context, in inboundText, i int, m medium) (bridge.Attachment, error) {
	return bridge.Attachment{}, fmt.Errorf("medium %d of %s: the attachment service is not available in this build", i, in.SID)
}
