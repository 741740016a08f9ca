package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wxteams/wxteams/bridge"
)

// The employee's commands (DESIGN §3): contacts, to <name>, qr, rename <name>, add <name>,
// remove <name>, transfer <name>, help. A leading slash is accepted too. Anything else is a
// message for the current contact.

const welcomeText = "WeChat is enabled for you. Customers who scan your QR code appear here; reply to them in this chat. Type \"help\" for the commands."

const helpText = `Commands:
• contacts — list your WeChat contacts
• to <name or number> — send your next messages to that contact (or press Reply on their message)
• qr — your WeChat QR code: customers scan it to reach you
• rename <name> — give your current contact a name (WeChat shows none)
• add <colleague> — add a colleague to the chat with your current contact: they see the customer's messages and yours
• remove <colleague> — take a colleague off that chat
• transfer <colleague> — hand your current contact over to a colleague (you leave the chat)
• help — this list
Anything else you write goes to your current contact on WeChat.`

// command runs a command; handled is false when text is not one.
func (e *Endpoint) command(ctx context.Context, a *Activity, emp *bridge.Employee, text, key string) (handled bool, err error) {
	word, arg, _ := strings.Cut(strings.TrimSpace(text), " ")
	word = strings.ToLower(strings.TrimPrefix(word, "/"))
	arg = strings.TrimSpace(arg)
	reply := func(template, msg string) error {
		return e.notify(ctx, emp, emp.CurrentChat, template, bridge.TextMessage(msg), text, a.ID, key)
	}
	switch {
	case word == "help" && arg == "":
		return true, reply("employee.help", helpText)
	case word == "contacts" && arg == "":
		return true, reply("employee.contacts", e.contactList(ctx, emp))
	case word == "qr" && arg == "":
		return true, e.sendQR(ctx, emp, text, a.ID, key)
	case word == "to" && arg != "":
		chat, name, err := e.findContact(ctx, emp, arg)
		if err != nil {
			return true, err
		}
		if chat == 0 {
			return true, reply("employee.contact_not_found", fmt.Sprintf("No contact matches %q, so nothing was sent. Type \"contacts\" to list them.", arg))
		}
		if err := e.bridge.SetCurrentChat(ctx, emp.ID, chat); err != nil {
			return true, err
		}
		emp.CurrentChat = chat
		return true, reply("employee.current_contact", "Now writing to "+name+".")
	case (word == "add" || word == "remove" || word == "transfer") && arg != "":
		return true, e.changeMembers(ctx, emp, word, arg, reply)
	case word == "rename" && arg != "":
		if emp.CurrentChat == 0 {
			return true, reply("employee.no_current_chat", "Pick a contact first (\"contacts\", then \"to <name>\"), then rename them.")
		}
		if err := e.bridge.RenameContact(ctx, emp.ID, emp.CurrentChat, arg); err != nil {
			return true, reply("employee.rename_refused", "Not renamed: "+err.Error())
		}
		return true, reply("employee.renamed", "Your current contact is now called "+arg+".")
	}
	return false, nil
}

// changeMembers adds a colleague to the employee's current chat, removes one, or hands the chat
// over. The engine tells everyone concerned; only a refusal is answered here.
func (e *Endpoint) changeMembers(ctx context.Context, emp *bridge.Employee, word, arg string, reply func(template, msg string) error) error {
	chat := emp.CurrentChat
	if chat == 0 {
		chat = e.onlyChat(ctx, emp)
	}
	if chat == 0 {
		return reply("employee.no_current_chat", "Pick a contact first (\"contacts\", then \"to <name>\"), then "+word+" a colleague.")
	}
	colleague, problem, err := e.findColleague(ctx, arg)
	if err != nil {
		return err
	}
	if problem != "" {
		return reply("employee.colleague_not_found", problem)
	}
	change := bridge.MembersChange{Chat: chat, By: emp.ID}
	switch word {
	case "add":
		change.Add = []bridge.EmployeeID{colleague.ID}
	case "remove":
		change.Remove = []bridge.EmployeeID{colleague.ID}
	case "transfer":
		if colleague.ID == emp.ID {
			return reply("employee.members_refused", "You cannot transfer a contact to yourself.")
		}
		change.Add, change.Remove = []bridge.EmployeeID{colleague.ID}, []bridge.EmployeeID{emp.ID}
	}
	err = e.bridge.ChangeMembers(ctx, change)
	if errors.Is(err, bridge.ErrInvalid) {
		return reply("employee.members_refused", "Not changed: "+invalidReason(err))
	}
	return err
}

// findColleague finds an employee who may use WeChat by e-mail, whole name, or the start of a
// name. problem says, for the employee, why none was found.
func (e *Endpoint) findColleague(ctx context.Context, arg string) (*bridge.Employee, string, error) {
	all, err := e.bridge.Employees(ctx)
	if err != nil {
		return nil, "", err
	}
	var exact, prefix []*bridge.Employee
	for _, c := range all {
		if !c.Enabled {
			continue
		}
		switch {
		case strings.EqualFold(c.Name, arg) || strings.EqualFold(c.Email, arg):
			exact = append(exact, c)
		case strings.HasPrefix(strings.ToLower(c.Name), strings.ToLower(arg)):
			prefix = append(prefix, c)
		}
	}
	found := exact
	if len(found) == 0 {
		found = prefix
	}
	switch len(found) {
	case 1:
		return found[0], "", nil
	case 0:
		return nil, fmt.Sprintf("No colleague with WeChat enabled matches %q. Use their name or e-mail address.", arg), nil
	}
	names := make([]string, len(found))
	for i, c := range found {
		names[i] = c.DisplayName()
		if c.Email != "" {
			names[i] += " (" + c.Email + ")"
		}
	}
	return nil, fmt.Sprintf("Several colleagues match %q: %s. Use the whole name or the e-mail address.", arg, strings.Join(names, ", ")), nil
}

// invalidReason is what a bridge.ErrInvalid refusal says, without the operations that wrap it.
func invalidReason(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, bridge.ErrInvalid.Error()+": "); ok {
		return after
	}
	return msg
}

// contactList is the employee's chats, numbered.
func (e *Endpoint) contactList(ctx context.Context, emp *bridge.Employee) string {
	chats, err := e.bridge.Chats(ctx, emp.ID)
	if err != nil {
		return "Your contacts cannot be listed right now; try again in a moment."
	}
	if len(chats) == 0 {
		return "You have no WeChat contacts yet. Type \"qr\" for your QR code: customers scan it to reach you."
	}
	var b strings.Builder
	b.WriteString("Your WeChat contacts:")
	for i, c := range chats {
		fmt.Fprintf(&b, "\n%d. %s — %s", i+1, c.ContactName, statusWord(c.Status))
		if c.QueueLen > 0 {
			fmt.Fprintf(&b, ", %d queued", c.QueueLen)
		}
		if c.Chat == emp.CurrentChat {
			b.WriteString(" (current)")
		}
	}
	b.WriteString("\nType \"to <name or number>\" to write to one.")
	return b.String()
}

func statusWord(s bridge.Status) string {
	switch s {
	case bridge.StatusPending:
		return "waiting for them to write first"
	case bridge.StatusActive:
		return "active"
	case bridge.StatusCapped:
		return "waiting for their reply"
	case bridge.StatusInactive:
		return "inactive"
	case bridge.StatusLeft:
		return "left the chat"
	case bridge.StatusClosed:
		return "closed"
	}
	return string(s)
}

// findContact matches a number from the contact list, a whole name, or the start of one.
func (e *Endpoint) findContact(ctx context.Context, emp *bridge.Employee, arg string) (bridge.ChatID, string, error) {
	chats, err := e.bridge.Chats(ctx, emp.ID)
	if err != nil {
		return 0, "", err
	}
	if n, err := strconv.Atoi(arg); err == nil && n >= 1 && n <= len(chats) {
		return chats[n-1].Chat, chats[n-1].ContactName, nil
	}
	for _, c := range chats {
		if strings.EqualFold(c.ContactName, arg) {
			return c.Chat, c.ContactName, nil
		}
	}
	var found []bridge.ChatSummary
	for _, c := range chats {
		if strings.HasPrefix(strings.ToLower(c.ContactName), strings.ToLower(arg)) {
			found = append(found, c)
		}
	}
	if len(found) == 1 {
		return found[0].Chat, found[0].ContactName, nil
	}
	return 0, "", nil
}

// sendQR sends the employee their WeChat QR code as an image.
func (e *Endpoint) sendQR(ctx context.Context, emp *bridge.Employee, text, activityID, key string) error {
	if !emp.Enabled || emp.Scene == "" || e.qr == nil {
		return e.notify(ctx, emp, 0, "employee.qr_unavailable", bridge.TextMessage("You have no WeChat QR code: WeChat is not enabled for your account. Ask your administrator."), text, activityID, key)
	}
	png, err := e.qr.QRCode(ctx, emp.Scene)
	if err != nil {
		return e.notify(ctx, emp, 0, "employee.qr_unavailable", bridge.TextMessage("Your QR code cannot be made right now (WeChat did not answer); try again in a moment."), text, activityID, key)
	}
	sum := sha256.Sum256(png)
	m := &bridge.Media{SHA256: hex.EncodeToString(sum[:]), ContentType: "image/png", Size: int64(len(png)), Name: "wechat-qr.png"}
	if err := e.bridge.StoreMedia(ctx, m, png); err != nil {
		return err
	}
	return e.notify(ctx, emp, 0, "employee.qr", bridge.Message{Type: "image", Text: "Your WeChat QR code: customers who scan it are connected to you.", Media: m}, text, activityID, key)
}
