package testbed

import "time"

// Take is Expect without failing: it returns the oldest buffered (or next)
// stanza matching pred, or an error after timeout.
func (c *XMPPClient) Take(pred func(Stanza) bool, timeout time.Duration) (Stanza, error) {
	return c.take(pred, timeout)
}
