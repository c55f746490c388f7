package testbed

import "time"

// Take is Expect for programs that are not tests (the load tool): it
// returns the oldest buffered stanza matching pred, waiting up to timeout,
// or an error.
func (c *XMPPClient) Take(pred func(Stanza) bool, timeout time.Duration) (Stanza, error) {
	return c.take(pred, timeout)
}
