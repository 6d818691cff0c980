package store

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/waymark-dev/waymark/sessionize"
)

// query is one journey question: its parameters, how to read them and how to answer it.
type query struct {
	name   string
	params []Param
	check  func(url.Values) error
	run    func(context.Context, *Store, *sessionize.Map, url.Values) (any, error)
}

// endpoint makes the named query of a parameter parser and the Store method that answers it. A
// query whose parameters do not parse is counted as refused, as one whose names are refused
// when it runs is (observeQuery).
func endpoint[Q, R any](name string, params []Param, parse func(url.Values) (Q, error), answer func(*Store, context.Context, *sessionize.Map, Q) (R, error)) query {
	return query{
		name:   name,
		params: params,
		check: func(v url.Values) error {
			_, err := parse(v)
			return err
		},
		run: func(ctx context.Context, s *Store, jm *sessionize.Map, v url.Values) (any, error) {
			q, err := parse(v)
			if err != nil {
				s.observeQuery(name, time.Now(), err)
				return nil, err
			}
			return answer(s, ctx, jm, q)
		},
	}
}

// registry is the journey questions, by the name of their endpoint and CLI command, and their
// names sorted. It is built once (queries) and never changed: what the functions below hand out
// of it are copies.
type registry struct {
	byName map[string]query
	names  []string
}

// queries returns the registry, built on first use.
var queries = sync.OnceValue(func() registry {
	all := []query{ // each matched per person where Config.FunnelMatching says
		endpoint("funnel", funnelParams(), ParseFunnelQuery, (*Store).Funnel),
		endpoint("dropoff", dropoffParams(), ParseDropoffQuery, (*Store).Dropoff),
		endpoint("correlation", correlationParams(), ParseCorrelationQuery, (*Store).Correlation),
		endpoint("paths", pathsParams(), ParsePathsQuery, (*Store).Paths),
		endpoint("next", nextParams(), ParseNextQuery, (*Store).Next),
		endpoint("retention", retentionParams(), ParseRetentionQuery, (*Store).Retention),
		endpoint("stages", stagesParams(), ParseStagesQuery, (*Store).Stages),
		endpoint("sessions", sessionsParams(), ParseSessionsQuery, (*Store).Sessions),
	}
	byName := map[string]query{}
	for _, q := range all {
		byName[q.name] = q
	}
	return registry{byName: byName, names: slices.Sorted(maps.Keys(byName))}
})

// QueryNames lists the journey queries, sorted: each is an endpoint /api/v1/NAME and a command.
func QueryNames() []string { return slices.Clone(queries().names) }

// QueryParams returns the parameters of the named query in the order it lists them; nil when
// there is no such query.
func QueryParams(name string) []Param { return slices.Clone(queries().byName[name].params) }

// Query runs the named journey query (one of QueryNames) with text parameters, as the API's
// query string and the CLI's flags give them, resolving stage names with jm: both answer through
// it, so they give the same answers and errors. A problem with a parameter is a *ParamError.
func (s *Store) Query(ctx context.Context, jm *sessionize.Map, name string, v url.Values) (any, error) {
	q, ok := queries().byName[name]
	if !ok {
		return nil, errors.New("unknown query " + name)
	}
	return q.run(ctx, s, jm, v)
}

// CheckParams reads the parameters of the named query without running it, so a command can
// report a bad flag before it connects anywhere. Names of events are checked when the query runs.
func CheckParams(name string, v url.Values) error {
	q, ok := queries().byName[name]
	if !ok {
		return errors.New("unknown query " + name)
	}
	return q.check(v)
}
