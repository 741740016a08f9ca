package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/compliance"
)

// The directory of people the compliance API offers officers: employees and WeChat customers by
// name, e-mail or id, with the chats they are or were in.

// People returns up to limit employees and customers whose display name, e-mail or id contains q
// (case-insensitive; every one when q is empty), employees first, each kind by name.
func (s *Store) People(ctx context.Context, q string, limit int) ([]compliance.Person, error) {
	like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(strings.TrimSpace(q))) + "%"
	out := []compliance.Person{}
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT id, name, email FROM employees
		WHERE LOWER(name) LIKE $1 ESCAPE '\' OR LOWER(email) LIKE $1 ESCAPE '\' OR LOWER(id) LIKE $1 ESCAPE '\'
		ORDER BY CASE WHEN name = '' THEN 1 ELSE 0 END, LOWER(name), id LIMIT $2`), compliance.StorableText(like), limit)
	if err != nil {
		return nil, fmt.Errorf("find people: %w", s.wrap(err))
	}
	for rows.Next() {
		e := bridge.Employee{}
		if err := rows.Scan(&e.ID, &e.Name, &e.Email); err != nil {
			rows.Close()
			return nil, s.wrap(err)
		}
		out = append(out, compliance.Person{Kind: compliance.PersonEmployee, ID: string(e.ID), Name: e.DisplayName(), Email: e.Email})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	if left := limit - len(out); left > 0 {
		rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT open_id, name, number FROM contacts
			WHERE LOWER(name) LIKE $1 ESCAPE '\' OR LOWER(open_id) LIKE $1 ESCAPE '\'
				OR (name = '' AND number > 0 AND 'wechat customer ' || number LIKE $1 ESCAPE '\')
			ORDER BY CASE WHEN name = '' THEN 1 ELSE 0 END, LOWER(name), number LIMIT $2`), compliance.StorableText(like), left)
		if err != nil {
			return nil, fmt.Errorf("find people: %w", s.wrap(err))
		}
		for rows.Next() {
			c := bridge.Contact{}
			if err := rows.Scan(&c.OpenID, &c.Name, &c.Number); err != nil {
				rows.Close()
				return nil, s.wrap(err)
			}
			out = append(out, compliance.Person{Kind: compliance.PersonCustomer, ID: string(c.OpenID), Name: c.DisplayName()})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, s.wrap(err)
		}
	}
	for i := range out {
		if out[i].Chats, err = s.chatsOf(ctx, out[i].Kind, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Person returns one employee or customer by id; ok is false when the directory has none.
func (s *Store) Person(ctx context.Context, kind, id string) (p compliance.Person, ok bool, err error) {
	p = compliance.Person{Kind: kind, ID: id}
	switch kind {
	case compliance.PersonEmployee:
		e := bridge.Employee{ID: bridge.EmployeeID(id)}
		err = s.db.QueryRowContext(ctx, s.rebind(`SELECT name, email FROM employees WHERE id = $1`), compliance.StorableText(id)).Scan(&e.Name, &e.Email)
		p.Name, p.Email = e.DisplayName(), e.Email
	case compliance.PersonCustomer:
		c := bridge.Contact{OpenID: bridge.OpenID(id)}
		err = s.db.QueryRowContext(ctx, s.rebind(`SELECT name, number FROM contacts WHERE open_id = $1`), compliance.StorableText(id)).Scan(&c.Name, &c.Number)
		p.Name = c.DisplayName()
	default:
		return p, false, fmt.Errorf("no kind of person %q", kind)
	}
	if isNoRows(err) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("find %s %s: %w", kind, id, s.wrap(err))
	}
	if p.Chats, err = s.chatsOf(ctx, kind, id); err != nil {
		return p, false, err
	}
	return p, true, nil
}

// chatsOf lists the chats an employee is a member of, or a customer's chat. (Chats an employee
// left are not listed: finding them means reading the archive; an export by employee does.)
func (s *Store) chatsOf(ctx context.Context, kind, id string) ([]int64, error) {
	q := `SELECT id FROM chats WHERE contact = $1`
	if kind == compliance.PersonEmployee {
		q = `SELECT chat_id FROM chat_members WHERE employee_id = $1`
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(q), compliance.StorableText(id))
	if err != nil {
		return nil, fmt.Errorf("chats of %s: %w", id, s.wrap(err))
	}
	defer rows.Close()
	out := []int64{}
	for rows.Next() {
		var c int64
		if err := rows.Scan(&c); err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return out, s.wrap(rows.Err())
}

// ChatInfo returns a chat's customer, members and status; ok is false when there is no such chat.
func (s *Store) ChatInfo(ctx context.Context, id int64) (info compliance.ChatInfo, ok bool, err error) {
	info = compliance.ChatInfo{ID: id, Members: []compliance.Person{}}
	var contact string
	err = s.db.QueryRowContext(ctx, s.rebind(`SELECT contact, status FROM chats WHERE id = $1`), id).Scan(&contact, &info.Status)
	if isNoRows(err) {
		return info, false, nil
	}
	if err != nil {
		return info, false, fmt.Errorf("chat %d: %w", id, s.wrap(err))
	}
	if info.Contact, _, err = s.Person(ctx, compliance.PersonCustomer, contact); err != nil {
		return info, false, err
	}
	rows, err := s.db.QueryContext(ctx, s.rebind(`SELECT employee_id FROM chat_members WHERE chat_id = $1 ORDER BY position`), id)
	if err != nil {
		return info, false, fmt.Errorf("members of chat %d: %w", id, s.wrap(err))
	}
	var members []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return info, false, s.wrap(err)
		}
		members = append(members, m)
	}
	rows.Close()
	for _, m := range members {
		p, _, err := s.Person(ctx, compliance.PersonEmployee, m)
		if err != nil {
			return info, false, err
		}
		info.Members = append(info.Members, p)
	}
	return info, true, nil
}
