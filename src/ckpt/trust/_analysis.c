/* The analysis of `analysis.analyse`, at C speed.
 *
 * `run(raw, i, count, stack, marks, memo, filled, uses, tags)` reads opcodes from
 * position `i` on, applying exactly what the Python loop in analysis.py
 * applies to the same Python objects (the stack, marks, memo list and uses). The
 * plain cases it applies itself (data, strings, memo, MARK, containers of
 * plain items, NEWOBJ of a named class, ...); for the rarer cases of the
 * same opcodes (a global given as data, a call of something unusual, a
 * partial's state, a persistent id) it calls back the Python functions the
 * loop uses (`tags[8]`, see analysis._hooks), so no opcode is slow however
 * a file repeats it. At anything unusual (a missing memo entry, an empty
 * stack, a bad string, a big integer) and at the few opcodes it leaves to
 * Python (INST, OBJ, STOP, big integers), it stops without consuming the
 * opcode and returns (i, count): the Python loop takes it, with its own
 * checks and messages. Being only a fast path over the same state, it
 * cannot judge differently; tests/core/test_stream.py fuzzes the two
 * against each other.
 *
 * `tags` is (None marker, empty-tuple marker, New, Global, Result, Tuple,
 * Partial, special global names, hooks, the memo's hole marker).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyTypeObject *new_type, *global_type, *result_type, *tuple_type, *partial_type;
static PyObject *none_tag, *empty_tag, *specials, *hooks, *items_slot;
static PyObject *items_text, *state_text, *name_text, *result_text, *instance_text;

/* The hooks, in the order of stream._hooks. */
enum { VALUE, RECEIVES, PARTIAL_STATE, CALL, NEW, NAMED, STACK_GLOBAL, EXTENSION, PERSISTENT, COUNT_TUPLE,
       COUNT_FROZENSET, HOOKS };

/* A number or a string, as the stream spells them (stream._SCALARS), or None. */
static int
is_scalar(PyObject *item)
{
    return PyLong_CheckExact(item) || PyFloat_CheckExact(item) || PyBool_Check(item) || PyUnicode_CheckExact(item)
        || item == none_tag;
}

/* What state.value() leaves alone: plain data, numbers, strings, None, new instances, call results. */
static int
is_plain(PyObject *item)
{
    return item == Py_None || is_scalar(item) || Py_TYPE(item) == new_type || Py_TYPE(item) == result_type;
}

/* Items that stream._numbers_in counts for hash flooding: numbers, strings
 * and None, at least one of them a number. */
static int
countable(PyObject *stack, Py_ssize_t from, Py_ssize_t to)
{
    int numbers = 0;
    for (Py_ssize_t k = from; k < to; k++) {
        PyObject *item = PyList_GET_ITEM(stack, k);
        if (!is_scalar(item))
            return 0;
        numbers = numbers || !(PyUnicode_CheckExact(item) || item == none_tag);
    }
    return numbers;
}


/* A target that receiving state or items changes nothing for (plain data, a new instance). */
static int
quiet_target(PyObject *target)
{
    return target == Py_None || Py_TYPE(target) == new_type;
}

static Py_ssize_t
floor_of(PyObject *marks)
{
    Py_ssize_t m = PyList_GET_SIZE(marks);
    return m ? PyLong_AsSsize_t(PyList_GET_ITEM(marks, m - 1)) : 0;
}

/* The Python hook `which` called with `args`; its result (a new reference) or NULL. */
static PyObject *
hook(int which, PyObject *args[], size_t count)
{
    return PyObject_Vectorcall(PyTuple_GET_ITEM(hooks, which), args, count, NULL);
}

/* A hook whose result is not needed: 0, or -1 on error. */
static int
notify(int which, PyObject *args[], size_t count)
{
    PyObject *result = hook(which, args, count);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

/* The hook `which` on the stack entries [from, to), as one list: 0, or -1 on error. */
static int
count_items(int which, PyObject *stack, Py_ssize_t from, Py_ssize_t to)
{
    PyObject *items = PyList_GetSlice(stack, from, to);
    if (items == NULL)
        return -1;
    int failed = notify(which, &items, 1);
    Py_DECREF(items);
    return failed;
}

/* state.value(item): a global kept as data is a use of it. */
static int
value(PyObject *item)
{
    if (is_plain(item) || item == empty_tag)
        return 0;
    if (Py_TYPE(item) == tuple_type) { /* its items (tuples never nest: make_tuple flattens them) */
        PyObject *items = PyObject_GetAttr(item, items_text);
        if (items == NULL)
            return -1;
        int failed = PyTuple_Check(items) ? 0 : (PyErr_SetString(PyExc_TypeError, "a Tuple tag's items"), -1);
        for (Py_ssize_t k = 0; !failed && k < PyTuple_GET_SIZE(items); k++)
            failed = value(PyTuple_GET_ITEM(items, k));
        Py_DECREF(items);
        return failed;
    }
    Py_INCREF(item);
    int failed = notify(VALUE, &item, 1);
    Py_DECREF(item);
    return failed;
}

static int
values(PyObject *stack, Py_ssize_t from, Py_ssize_t to)
{
    for (Py_ssize_t k = from; k < to; k++)
        if (value(PyList_GET_ITEM(stack, k)) < 0)
            return -1;
    return 0;
}

/* stream._receives(target, what): state or items given to a global or a call's result. */
static int
receives(PyObject *target, PyObject *what)
{
    if (quiet_target(target))
        return 0;
    PyObject *args[2] = {target, what};
    Py_INCREF(target);
    int failed = notify(RECEIVES, args, 2);
    Py_DECREF(target);
    return failed;
}

/* Replace the stack entries [from, end) with `result` (a new reference, consumed). */
static int
replace(PyObject *stack, Py_ssize_t from, PyObject *result)
{
    if (result == NULL)
        return -1;
    int failed = PyList_SetSlice(stack, from, PyList_GET_SIZE(stack), NULL) < 0 || PyList_Append(stack, result) < 0;
    Py_DECREF(result);
    return failed ? -1 : 0;
}

/* The stack entries [from, end) as the args of a hook (borrowed; the stack keeps them alive). */
static PyObject *
hook_on_stack(int which, PyObject *stack, Py_ssize_t from)
{
    PyObject *args[4];
    Py_ssize_t count = PyList_GET_SIZE(stack) - from;
    for (Py_ssize_t k = 0; k < count; k++)
        args[k] = PyList_GET_ITEM(stack, from + k);
    return hook(which, args, (size_t)count);
}

/* _Tuple(items) of the stack entries [from, to), replacing them; a tuple
 * among them is data at once (stream._tuple flattens it to None). */
static int
make_tuple(PyObject *stack, Py_ssize_t from, Py_ssize_t to)
{
    for (Py_ssize_t k = from; k < to; k++) {
        PyObject *item = PyList_GET_ITEM(stack, k);
        if (Py_TYPE(item) == tuple_type) {
            if (value(item) < 0)
                return -1;
            Py_INCREF(Py_None);
            PyList_SetItem(stack, k, Py_None);
        }
    }
    if (countable(stack, from, to) && count_items(COUNT_TUPLE, stack, from, to) < 0)
        return -1;
    PyObject *as_tuple = PyTuple_New(to - from);
    if (as_tuple == NULL)
        return -1;
    for (Py_ssize_t k = from; k < to; k++) {
        PyObject *item = PyList_GET_ITEM(stack, k);
        Py_INCREF(item);
        PyTuple_SET_ITEM(as_tuple, k - from, item);
    }
    /* _Tuple(as_tuple), without the frozen dataclass's __init__: a new
     * instance, its one slot set through the slot's own descriptor */
    PyObject *tag = tuple_type->tp_alloc(tuple_type, 0);
    if (tag != NULL && Py_TYPE(items_slot)->tp_descr_set(items_slot, tag, as_tuple) < 0)
        Py_CLEAR(tag);
    Py_DECREF(as_tuple);
    return replace(stack, from, tag);
}

/* NEWOBJ / REDUCE of a named global: or `bit` into uses[glob.name] and
 * replace the top two stack entries with glob.<tag> (its instance or result
 * tag). 1 applied, 0 not applicable (a hook takes it), -1 error. */
static int
use_global(PyObject *glob, PyObject *tag_name, long bit, PyObject *uses, PyObject *stack, Py_ssize_t n)
{
    PyObject *name = PyObject_GetAttr(glob, name_text);
    PyObject *tag = name ? PyObject_GetAttr(glob, tag_name) : NULL;
    PyObject *bits = tag ? PyDict_GetItemWithError(uses, name) : NULL;
    if (bits == NULL) {
        Py_XDECREF(name);
        Py_XDECREF(tag);
        return PyErr_Occurred() ? -1 : 0;
    }
    long had = PyLong_AsLong(bits);
    int failed = 0;
    if ((had & bit) != bit) { /* the first such use: most objects are instances of a class seen before */
        PyObject *merged = PyLong_FromLong(had | bit);
        failed = merged == NULL || PyDict_SetItem(uses, name, merged) < 0;
        Py_XDECREF(merged);
    }
    Py_DECREF(name);
    if (failed) {
        Py_DECREF(tag);
        return -1;
    }
    return replace(stack, n - 2, tag) < 0 ? -1 : 1;
}

/* REDUCE of a named global other than getattr, type or partial on plain arguments: 1 if so. */
static int
plain_call(PyObject *func, PyObject *arguments)
{
    if (Py_TYPE(func) != global_type || Py_TYPE(arguments) != tuple_type)
        return 0;
    PyObject *items = PyObject_GetAttr(arguments, items_text);
    if (items == NULL)
        return -1;
    int plain = PyTuple_Check(items);
    for (Py_ssize_t k = 0; plain && k < PyTuple_GET_SIZE(items); k++)
        plain = is_plain(PyTuple_GET_ITEM(items, k));
    Py_DECREF(items);
    if (!plain)
        return 0;
    PyObject *name = PyObject_GetAttr(func, name_text);
    if (name == NULL)
        return -1;
    int special = PySequence_Contains(specials, name);
    Py_DECREF(name);
    return special < 0 ? -1 : !special;
}

static uint64_t
little_endian(const unsigned char *p, int size)
{
    uint64_t value = 0;
    for (int k = size - 1; k >= 0; k--)
        value = (value << 8) | p[k];
    return value;
}

/* An argument of a `size`-byte length and that many bytes: its width, or -1 if it runs past `end`. */
static Py_ssize_t
prefixed(const unsigned char *raw, Py_ssize_t start, Py_ssize_t end, int size)
{
    if (start + size > end)
        return -1;
    uint64_t length = little_endian(raw + start, size);
    return length > (uint64_t)(end - start - size) ? -1 : size + (Py_ssize_t)length;
}

/* `lines` lines of text: their width with the newlines, or -1 if one is missing. */
static Py_ssize_t
text_lines(const unsigned char *raw, Py_ssize_t start, Py_ssize_t end, int lines)
{
    Py_ssize_t at = start;
    for (int k = 0; k < lines; k++) {
        const unsigned char *newline = memchr(raw + at, '\n', (size_t)(end - at));
        if (newline == NULL)
            return -1;
        at = newline - raw + 1;
    }
    return at - start;
}

/* Argument widths by opcode byte, read once from the one opcode table
 * (ckpt.objects.opcodes.SIGNED_WIDTHS, the table the Python loop reads):
 * >= 0 fixed; -1, -4, -8 a length of that many bytes first; -2 up to a
 * newline; -3 two lines; 127 no such opcode. */
static signed char widths[256];

/* The width of the argument at `start`; -1 if there is no such opcode, or
 * the argument runs past the end of the stream. */
static Py_ssize_t
width_of(const unsigned char *raw, Py_ssize_t start, Py_ssize_t end, unsigned char code)
{
    int width = widths[code];
    switch (width) {
    case 127: return -1;
    case -1: case -4: case -8: return prefixed(raw, start, end, -width);
    case -2: return text_lines(raw, start, end, 1);
    case -3: return text_lines(raw, start, end, 2);
    default: return start + width > end ? -1 : width;
    }
}

/* 1 to `most` decimal digits and nothing else: their value, or -1 (the Python side reads anything else). */
static long long
digits(const unsigned char *p, Py_ssize_t length, Py_ssize_t most)
{
    if (length < 1 || length > most)
        return -1;
    long long value = 0;
    for (Py_ssize_t k = 0; k < length; k++) {
        if (p[k] < '0' || p[k] > '9')
            return -1;
        value = value * 10 + (p[k] - '0');
    }
    return value;
}

/* The digits of a memo index in text (GET, PUT): the index, or -1. */
static long
text_index(const unsigned char *p, Py_ssize_t length)
{
    return (long)digits(p, length, 9);
}

/* INT / LONG text of at most 18 digits (too small to collide, stream._count_integer): 1 and its value. */
static int
small_integer_text(const unsigned char *p, Py_ssize_t length, int long_suffix, long long *number)
{
    if (long_suffix && length > 0 && p[length - 1] == 'L')
        length--;
    int negative = length > 0 && p[0] == '-';
    long long value = digits(p + negative, length - negative, 18);
    if (value < 0)
        return 0;
    *number = negative ? -value : value;
    return 1;
}

static PyObject *
run(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t i, count, filled;
    PyObject *stack, *marks, *memo, *uses, *tags;
    if (!PyArg_ParseTuple(args, "y*nnO!O!O!nO!O!", &view, &i, &count, &PyList_Type, &stack, &PyList_Type, &marks,
                          &PyList_Type, &memo, &filled, &PyDict_Type, &uses, &PyTuple_Type, &tags))
        return NULL;
    if (PyTuple_GET_SIZE(tags) != 10 || !PyTuple_Check(PyTuple_GET_ITEM(tags, 8))
        || PyTuple_GET_SIZE(PyTuple_GET_ITEM(tags, 8)) != HOOKS) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "tags must be (none, empty, New, Global, Result, Tuple, Partial, "
                                         "special names, hooks, hole)");
        return NULL;
    }
    PyObject *hole = PyTuple_GET_ITEM(tags, 9);
    none_tag = PyTuple_GET_ITEM(tags, 0);
    empty_tag = PyTuple_GET_ITEM(tags, 1);
    new_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 2);
    global_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 3);
    result_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 4);
    tuple_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 5);
    partial_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 6);
    specials = PyTuple_GET_ITEM(tags, 7);
    hooks = PyTuple_GET_ITEM(tags, 8);
    Py_XDECREF(items_slot);
    items_slot = PyObject_GetAttrString((PyObject *)tuple_type, "items");
    if (items_slot == NULL || Py_TYPE(items_slot)->tp_descr_set == NULL) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "the Tuple tag must have one slot, items");
        return NULL;
    }
    const unsigned char *raw = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len;
    int failed = 0;

#define STOP_HERE goto done
#define CHECK(call) do { if ((call) < 0) { failed = 1; goto done; } } while (0)
#define PUSH(obj) CHECK(PyList_Append(stack, (obj)))
#define PUSH_NEW(obj) CHECK(replace(stack, n, (obj)))
#define MARK_AT(m) PyLong_AsSsize_t(PyList_GET_ITEM(marks, (m)))
#define DROP_MARK(m) CHECK(PyList_SetSlice(marks, (m), (m) + 1, NULL))

    while (i < end) {
        unsigned char code = raw[i];
        Py_ssize_t start = i + 1, n = PyList_GET_SIZE(stack), m = PyList_GET_SIZE(marks);
        Py_ssize_t width = width_of(raw, start, end, code);
        if (width < 0)
            STOP_HERE; /* no such opcode, or its argument runs past the end: the Python loop says so */
        const unsigned char *arg = raw + start;
        switch (code) {
        case 'h': case 'j': case 'g': { /* BINGET, LONG_BINGET, GET */
            long index = code == 'h' ? arg[0] : code == 'j' ? (long)little_endian(arg, 4) : text_index(arg, width - 1);
            if (index < 0 || index >= PyList_GET_SIZE(memo) || PyList_GET_ITEM(memo, index) == hole) STOP_HERE;
            PUSH(PyList_GET_ITEM(memo, index));
            break;
        }
        case 0x94: case 'q': case 'r': case 'p': { /* MEMOIZE, BINPUT, LONG_BINPUT, PUT */
            if (n == 0) STOP_HERE;
            Py_ssize_t index;
            if (code == 0x94) {
                index = filled;
            } else {
                if (n <= floor_of(marks)) STOP_HERE; /* state.top() refuses an entry below the last MARK */
                index = code == 'q' ? arg[0] : code == 'r' ? (long)little_endian(arg, 4) : text_index(arg, width - 1);
                if (index < 0 || index > count + 1) STOP_HERE; /* the Python loop refuses it */
            }
            while (PyList_GET_SIZE(memo) <= index) /* state.remember: holes up to the index */
                CHECK(PyList_Append(memo, hole));
            PyObject *entry = PyList_GET_ITEM(stack, n - 1);
            if (PyList_GET_ITEM(memo, index) == hole)
                filled++;
            Py_INCREF(entry);
            CHECK(PyList_SetItem(memo, index, entry));
            break;
        }
        case 'I': case 'L': { /* INT, LONG of a few digits */
            long long number;
            if (!small_integer_text(arg, width - 1, code == 'L', &number)) STOP_HERE;
            PUSH_NEW(PyLong_FromLongLong(number));
            break;
        }
        case 0x8a: case 0x8b: { /* LONG1, LONG4 of at most 7 bytes: too small to collide */
            int skip = code == 0x8a ? 1 : 4, size = (int)(width - skip);
            if (size > 7) STOP_HERE;
            uint64_t bits = little_endian(arg + skip, size);
            if (size && (arg[skip + size - 1] & 0x80)) /* negative: sign-extend */
                bits |= ~(uint64_t)0 << (8 * size);
            PUSH_NEW(PyLong_FromLongLong((long long)bits));
            break;
        }
        case '}': case ']': case 'C': case 'U': case 'B': case 'T': case 0x8e: case 0x96: case 'S': case 0x8f:
        case 0x97:
            PUSH(Py_None);
            break;
        case 0x88: PUSH(Py_True); break;
        case 0x89: PUSH(Py_False); break;
        case 'K': PUSH_NEW(PyLong_FromLong(arg[0])); break; /* numbers carry their value: see stream._literal */
        case 'M': PUSH_NEW(PyLong_FromLong((long)little_endian(arg, 2))); break;
        case 'J': PUSH_NEW(PyLong_FromLong((long)(int32_t)little_endian(arg, 4))); break;
        case 'G': {
            double number = PyFloat_Unpack8((const char *)arg, 0);
            if (number == -1.0 && PyErr_Occurred()) { failed = 1; goto done; }
            PUSH_NEW(PyFloat_FromDouble(number));
            break;
        }
        case 'F': { /* FLOAT: float() of its text, as the unpickler reads it; None if it does not */
            PyObject *text = PyBytes_FromStringAndSize((const char *)arg, width - 1);
            PyObject *number = text ? PyFloat_FromString(text) : NULL;
            Py_XDECREF(text);
            if (number == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_ValueError)) { failed = 1; goto done; }
                PyErr_Clear();
                Py_INCREF(Py_None);
                number = Py_None;
            }
            PUSH_NEW(number);
            break;
        }
        case 'N': PUSH(none_tag); break;
        case ')': PUSH(empty_tag); break;
        case 0x95: case 0x80: break; /* FRAME, PROTO */
        case '(': { /* MARK */
            PyObject *mark = PyLong_FromSsize_t(n);
            if (mark == NULL) { failed = 1; goto done; }
            int appended = PyList_Append(marks, mark);
            Py_DECREF(mark);
            CHECK(appended);
            break;
        }
        case 0x8c: case 'X': case 0x8d: case 'V': { /* SHORT_BINUNICODE, BINUNICODE, BINUNICODE8, UNICODE */
            Py_ssize_t skip = code == 0x8c ? 1 : code == 'X' ? 4 : code == 0x8d ? 8 : 0;
            PyObject *text = code == 'V'
                ? PyUnicode_DecodeRawUnicodeEscape((const char *)arg, width - 1, NULL)
                : PyUnicode_DecodeUTF8((const char *)arg + skip, width - skip, "surrogatepass");
            if (text == NULL) { PyErr_Clear(); STOP_HERE; }
            PUSH_NEW(text);
            break;
        }
        case 'c': { /* GLOBAL */
            PyObject *lines = PyUnicode_DecodeUTF8((const char *)arg, width, "surrogatepass");
            if (lines == NULL) { PyErr_Clear(); STOP_HERE; }
            PyObject *glob = hook(NAMED, &lines, 1);
            Py_DECREF(lines);
            PUSH_NEW(glob);
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            if (n - 2 < floor_of(marks)) STOP_HERE;
            CHECK(replace(stack, n - 2, hook_on_stack(STACK_GLOBAL, stack, n - 2)));
            break;
        case 0x82: case 0x83: case 0x84: { /* EXT1, EXT2, EXT4 */
            PyObject *code_number = PyLong_FromUnsignedLongLong(little_endian(arg, (int)width));
            PyObject *none = code_number ? hook(EXTENSION, &code_number, 1) : NULL;
            Py_XDECREF(code_number);
            PUSH_NEW(none);
            break;
        }
        case 'P': case 'Q': /* PERSID, BINPERSID */
            if (code == 'Q' && n <= floor_of(marks)) STOP_HERE;
            CHECK(replace(stack, code == 'Q' ? n - 1 : n, hook(PERSISTENT, NULL, 0)));
            break;
        case 'u': case 'e': { /* SETITEMS, APPENDS (the loop's inline case: no floor below the mark) */
            if (m == 0) STOP_HERE;
            Py_ssize_t cut = MARK_AT(m - 1);
            if (cut < 1 || cut > n) { PyErr_Clear(); STOP_HERE; }
            CHECK(values(stack, cut, n));
            CHECK(PyList_SetSlice(stack, cut, n, NULL));
            DROP_MARK(m - 1);
            CHECK(receives(PyList_GET_ITEM(stack, cut - 1), items_text));
            break;
        }
        case 0x90: { /* ADDITEMS: the set below the mark must be above the mark before it */
            if (m == 0) STOP_HERE;
            Py_ssize_t cut = MARK_AT(m - 1), floor = m > 1 ? MARK_AT(m - 2) : 0;
            if (cut <= floor || cut > n) { PyErr_Clear(); STOP_HERE; }
            CHECK(values(stack, cut, n));
            CHECK(PyList_SetSlice(stack, cut, n, NULL));
            DROP_MARK(m - 1);
            CHECK(receives(PyList_GET_ITEM(stack, cut - 1), items_text));
            break;
        }
        case 'a': case 's': { /* APPEND, SETITEM: items popped top first */
            Py_ssize_t size = code == 'a' ? 1 : 2;
            if (n - size - 1 < floor_of(marks)) STOP_HERE;
            for (Py_ssize_t k = n - 1; k >= n - size; k--)
                CHECK(value(PyList_GET_ITEM(stack, k)));
            CHECK(PyList_SetSlice(stack, n - size, n, NULL));
            CHECK(receives(PyList_GET_ITEM(stack, n - size - 1), items_text));
            break;
        }
        case 'b': { /* BUILD (the loop's inline case: no floor below the mark) */
            if (n < 2) STOP_HERE;
            PyObject *given = PyList_GET_ITEM(stack, n - 1), *target = PyList_GET_ITEM(stack, n - 2);
            Py_INCREF(given);
            int outcome = Py_TYPE(target) == partial_type ? notify(PARTIAL_STATE, &given, 1) : value(given);
            Py_DECREF(given);
            CHECK(outcome);
            CHECK(PyList_SetSlice(stack, n - 1, n, NULL));
            if (Py_TYPE(target) != partial_type)
                CHECK(receives(PyList_GET_ITEM(stack, n - 2), state_text));
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1, TUPLE2, TUPLE3: state.pop() keeps above the last MARK */
            Py_ssize_t size = code - 0x84;
            if (n - size < floor_of(marks)) STOP_HERE;
            CHECK(make_tuple(stack, n - size, n));
            break;
        }
        case 't': { /* TUPLE */
            if (m == 0) STOP_HERE;
            Py_ssize_t cut = MARK_AT(m - 1);
            if (cut < 0 || cut > n) { PyErr_Clear(); STOP_HERE; }
            DROP_MARK(m - 1);
            CHECK(make_tuple(stack, cut, n));
            break;
        }
        case 'l': case 'd': case 0x91: case '1': { /* LIST, DICT, FROZENSET, POP_MARK: their items are data */
            if (m == 0) STOP_HERE;
            Py_ssize_t cut = MARK_AT(m - 1);
            if (cut < 0 || cut > n) { PyErr_Clear(); STOP_HERE; }
            CHECK(values(stack, cut, n));
            if (code == 0x91 && countable(stack, cut, n))
                CHECK(count_items(COUNT_FROZENSET, stack, cut, n));
            DROP_MARK(m - 1);
            CHECK(PyList_SetSlice(stack, cut, n, NULL));
            if (code != '1')
                PUSH(Py_None);
            break;
        }
        case 'R': { /* REDUCE */
            if (n - 2 < floor_of(marks)) STOP_HERE;
            PyObject *arguments = PyList_GET_ITEM(stack, n - 1), *func = PyList_GET_ITEM(stack, n - 2);
            int plain = plain_call(func, arguments);
            CHECK(plain);
            int applied = plain ? use_global(func, result_text, 2 /* stream.CALL */, uses, stack, n) : 0;
            CHECK(applied);
            if (applied == 0)
                CHECK(replace(stack, n - 2, hook_on_stack(CALL, stack, n - 2)));
            break;
        }
        case 0x81: case 0x92: { /* NEWOBJ (no floor below the mark, as the loop's inline case), NEWOBJ_EX */
            Py_ssize_t size = code == 0x81 ? 2 : 3;
            if (code == 0x81 ? n < 2 : n - 3 < floor_of(marks)) STOP_HERE;
            PyObject *cls = PyList_GET_ITEM(stack, n - size), *arguments = PyList_GET_ITEM(stack, n - size + 1);
            int applied = 0;
            if (code == 0x81 && arguments == empty_tag && Py_TYPE(cls) == global_type) {
                applied = use_global(cls, instance_text, 4 /* stream.NEW */, uses, stack, n);
                CHECK(applied);
            }
            if (applied == 0) {
                PyObject *call[4] = {cls, arguments, code == 0x81 ? empty_tag : PyList_GET_ITEM(stack, n - 1),
                                     code == 0x81 ? Py_False : Py_True};
                CHECK(replace(stack, n - size, hook(NEW, call, 4)));
            }
            break;
        }
        case '0': /* POP */
            if (m && MARK_AT(m - 1) == n) {
                DROP_MARK(m - 1); /* POP of an empty mark discards the mark, as the C unpickler does */
                break;
            }
            if (n <= floor_of(marks)) STOP_HERE;
            CHECK(value(PyList_GET_ITEM(stack, n - 1)));
            CHECK(PyList_SetSlice(stack, n - 1, n, NULL));
            break;
        case '2': /* DUP */
            if (n <= floor_of(marks)) STOP_HERE;
            PUSH(PyList_GET_ITEM(stack, n - 1));
            break;
        case 0x98: /* READONLY_BUFFER */
            if (n <= floor_of(marks)) STOP_HERE;
            break;
        default: /* not read here (INST, OBJ, STOP, ...): the Python loop takes it */
            STOP_HERE;
        }
        i = start + width;
        count++;
    }
done:
    PyBuffer_Release(&view);
    if (failed)
        return NULL;
    return Py_BuildValue("nnn", i, count, filled);
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, "Apply the opcodes from position i on; return (i, opcodes, memo entries filled)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_analysis", "The opcode loop of analysis.analyse, at C speed.", -1, methods};

PyMODINIT_FUNC
PyInit__analysis(void)
{
    items_text = PyUnicode_InternFromString("items");
    state_text = PyUnicode_InternFromString("state");
    name_text = PyUnicode_InternFromString("name");
    result_text = PyUnicode_InternFromString("result");
    instance_text = PyUnicode_InternFromString("instance");
    if (!items_text || !state_text || !name_text || !result_text || !instance_text)
        return NULL;
    PyObject *opcodes = PyImport_ImportModule("ckpt.objects.opcodes");
    if (opcodes == NULL)
        return NULL;
    PyObject *table = PyObject_GetAttrString(opcodes, "SIGNED_WIDTHS");
    Py_DECREF(opcodes);
    if (table == NULL)
        return NULL;
    if (!PyBytes_Check(table) || PyBytes_GET_SIZE(table) != 256) {
        Py_DECREF(table);
        PyErr_SetString(PyExc_TypeError, "ckpt.objects.opcodes.SIGNED_WIDTHS must be 256 bytes");
        return NULL;
    }
    memcpy(widths, PyBytes_AS_STRING(table), 256);
    Py_DECREF(table);
    return PyModule_Create(&module);
}
