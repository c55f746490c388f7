package main

import (
	"switchboard/bridge"
	"switchboard/transports/email"
	"switchboard/transports/irc"
	"switchboard/transports/sms"
)

// plugins are the transports this build knows, in the order their links
// start. A new transport is a package under transports/ that exports a
// bridge.Plugin, and a line here.
var plugins = []bridge.Plugin{
	irc.Plugin,
	email.Plugin,
	sms.Plugin,
}
