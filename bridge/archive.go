package bridge

import (
	"time"

	"switchboard/store"
)

// StoreQuery turns a XEP-0313 query into the store's query for the archive
// of (user, transport, peer): the time bounds (XEP-0082) and the XEP-0059
// paging. firstIndex is the RSM first index to report (0 from the start,
// -1 when paging after or before an id). A bad date is a bad-request.
func (q *ArchiveQuery) StoreQuery(user, transport, peer string) (sq store.ArchiveQuery, firstIndex int, err error) {
	sq = store.ArchiveQuery{User: user, Transport: transport, Peer: peer}
	for _, b := range []struct {
		in  string
		out *time.Time
	}{{q.Start, &sq.Start}, {q.End, &sq.End}} {
		if b.in == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, b.in)
		if err != nil {
			return sq, 0, Errorf(BadRequest, "%q is not a date and time (XEP-0082).", b.in)
		}
		*b.out = t
	}
	if p := q.Page; p != nil {
		if p.Max != nil {
			sq.Limit = max(1, *p.Max)
		}
		if p.After != nil {
			sq.AfterID, firstIndex = *p.After, -1
		}
		if p.Before != nil {
			sq.Before, sq.BeforeID, firstIndex = true, *p.Before, -1
		}
	}
	return sq, firstIndex, nil
}

// ArchiveResultOf builds the answer to q from a page of the store, each
// entry turned into a message by msg.
func ArchiveResultOf(q *ArchiveQuery, page *store.ArchivePage, firstIndex int, msg func(store.ArchiveEntry) Message) *ArchiveResult {
	res := &ArchiveResult{QueryID: q.QueryID, Complete: page.Complete, Page: &PageResult{Count: page.Count, FirstIndex: firstIndex}}
	for _, e := range page.Entries {
		res.Messages = append(res.Messages, msg(e))
	}
	if len(page.Entries) > 0 {
		res.Page.First, res.Page.Last = page.Entries[0].ID, page.Entries[len(page.Entries)-1].ID
	}
	return res
}
