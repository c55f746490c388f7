package main

// Blank imports pin the modules go.mod needs while parts are written in parallel; removed once every package imports its own.

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/ergochat/irc-go/ircevent"
	_ "github.com/ergochat/irc-go/ircmsg"
	_ "github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/nyaruka/phonenumbers"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_golang/prometheus/promhttp"
	_ "golang.org/x/text/encoding/charmap"
	_ "mellium.im/sasl"
	_ "mellium.im/xmlstream"
	_ "mellium.im/xmpp"
	_ "mellium.im/xmpp/component"
	_ "mellium.im/xmpp/dial"
	_ "mellium.im/xmpp/form"
	_ "mellium.im/xmpp/jid"
	_ "mellium.im/xmpp/muc"
	_ "mellium.im/xmpp/ping"
	_ "mellium.im/xmpp/stanza"
	_ "mellium.im/xmpp/xtime"
	_ "modernc.org/sqlite"
)
