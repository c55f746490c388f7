package mailmsg

import (
	"errors"
	"io"
)

func parse(io.Reader, ParseOptions) (*Message, error) {
	return nil, errors.New("mailmsg: Parse not built yet")
}
func build(Outgoing) ([]byte, string, error) {
	return nil, "", errors.New("mailmsg: Build not built yet")
}
func validateAddress(string) (Address, error) {
	return Address{}, errors.New("mailmsg: ValidateAddress not built yet")
}
func threadID(*Message) string     { return "" }
func replySubject(s string) string { return s }
