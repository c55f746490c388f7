package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the gateway's Prometheus collectors. Component links,
// transports and the gateway update them; main serves them at /metrics.
type Metrics struct {
	Registry *prometheus.Registry

	// LinkUp is 1 while a component link is connected, by domain.
	LinkUp *prometheus.GaugeVec
	// Stanzas counts stanzas by domain, direction ("in", "out") and kind
	// ("message", "presence", "iq").
	Stanzas *prometheus.CounterVec
	// StanzaErrors counts error stanzas the gateway sent, by domain and
	// condition.
	StanzaErrors *prometheus.CounterVec
	// QueueDepth is the number of stanzas waiting in a link's send queue.
	QueueDepth *prometheus.GaugeVec
	// ActiveUsers counts running user goroutines, by transport.
	ActiveUsers *prometheus.GaugeVec
	// Connections counts open remote connections (IRC), by transport.
	Connections *prometheus.GaugeVec
	// Messages counts relayed messages by transport and direction
	// ("to-xmpp", "to-remote").
	Messages *prometheus.CounterVec
	// Dropped counts events that could not be queued for XMPP.
	Dropped *prometheus.CounterVec
}

// NewMetrics creates the collectors in reg (a fresh registry when nil, with
// the Go and process collectors).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &Metrics{
		Registry: reg,
		LinkUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_component_link_up", Help: "1 while the XEP-0114 link of a component domain is up.",
		}, []string{"domain"}),
		Stanzas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_stanzas_total", Help: "Stanzas through the component links.",
		}, []string{"domain", "direction", "kind"}),
		StanzaErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_stanza_errors_total", Help: "Error stanzas sent, by condition.",
		}, []string{"domain", "condition"}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_send_queue_depth", Help: "Stanzas waiting in a component link's send queue.",
		}, []string{"domain"}),
		ActiveUsers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_active_users", Help: "Users with a running session, by transport.",
		}, []string{"transport"}),
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_remote_connections", Help: "Open connections to remote servers, by transport.",
		}, []string{"transport"}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_messages_total", Help: "Messages relayed, by transport and direction.",
		}, []string{"transport", "direction"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_events_dropped_total", Help: "Events for XMPP users that could not be queued (send queue full).",
		}, []string{"transport"}),
	}
	reg.MustRegister(m.LinkUp, m.Stanzas, m.StanzaErrors, m.QueueDepth, m.ActiveUsers, m.Connections, m.Messages, m.Dropped)
	return m
}

func (m *Metrics) users(transport string, delta float64) {
	m.ActiveUsers.WithLabelValues(transport).Add(delta)
}

func (m *Metrics) dropped(transport string) {
	m.Dropped.WithLabelValues(transport).Inc()
}
