/* scanning/replay.py's Replay, at C speed: the same state, the same opcodes, the
 * same errors (tests/core/test_reach.py fuzzes the two against each other).
 *
 * Replay(targets, table): `targets` are memo indexes; `table` is replay's opcodes.SIGNED_WIDTHS,
 * 256 signed argument widths (127: no such opcode), then 256 effects
 * (reach.EFFECTS, or reach.BUFFER_EFFECTS).
 * A value is a node number; a node has one bit: it is, holds or leads to a
 * target (or to a value an opcode of effect LEAD pushed). Node 0 is every atom. Arrays grow by doubling; the memo is bounded
 * by the bytes fed, so no stream can make it larger than a few times itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { UNKNOWN, ATOM, EMPTY, FROM_MARK, FROM_TOP_1, FROM_TOP_2, FROM_TOP_3, INTO_TOP_1, INTO_TOP_2, INTO_TOP_MARK,
       PUT, GET, SKIP, MARK, POP, POP_MARK, DUP, STOP, LEAD };

#define MAX_DIGITS 10

typedef struct {
    Py_ssize_t *items;
    Py_ssize_t size, capacity;
} Array;

typedef struct {
    PyObject_HEAD
    signed char widths[256];
    unsigned char effects[256];
    uint8_t *targets; /* by memo index: 1 for a target */
    Py_ssize_t target_span;
    uint8_t *bits;
    Py_ssize_t nbits, bits_capacity;
    Array memo;
    Py_ssize_t fed;
} Replay;

static PyObject *ReplayError;

static int
reserve(void **buffer, Py_ssize_t *capacity, Py_ssize_t needed, size_t item)
{
    if (needed <= *capacity)
        return 0;
    Py_ssize_t grown = *capacity ? *capacity : 64;
    while (grown < needed)
        grown *= 2;
    void *moved = PyMem_Realloc(*buffer, (size_t)grown * item);
    if (moved == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *buffer = moved;
    *capacity = grown;
    return 0;
}

static int
append(Array *array, Py_ssize_t value)
{
    if (reserve((void **)&array->items, &array->capacity, array->size + 1, sizeof(Py_ssize_t)) < 0)
        return -1;
    array->items[array->size++] = value;
    return 0;
}

/* A new node with the given bit; its number, or -1 on error. */
static Py_ssize_t
node(Replay *self, uint8_t lead)
{
    if (reserve((void **)&self->bits, &self->bits_capacity, self->nbits + 1, 1) < 0)
        return -1;
    self->bits[self->nbits] = lead;
    return self->nbits++;
}

static int
fail(const char *what, Py_ssize_t position)
{
    PyErr_Format(ReplayError, "%s, at position %zd", what, position);
    return -1;
}

static Py_ssize_t
floor_of(Array *marks)
{
    return marks->size ? marks->items[marks->size - 1] : 0;
}

static int
any_lead(Replay *self, Array *stack, Py_ssize_t from)
{
    for (Py_ssize_t k = from; k < stack->size; k++)
        if (self->bits[stack->items[k]])
            return 1;
    return 0;
}

/* Where the argument of the opcode at `i` starts and the next opcode begins: 0, or -1 (error set). */
static int
argument(Replay *self, const unsigned char *raw, Py_ssize_t end, Py_ssize_t i, Py_ssize_t *start, Py_ssize_t *after)
{
    int width = self->widths[raw[i]];
    if (width == 127) {
        PyErr_Format(ReplayError, "unknown opcode %#04x at position %zd", raw[i], i);
        return -1;
    }
    *start = i + 1;
    if (width >= 0) {
        *after = *start + width;
    }
    else if (width == -1 || width == -4 || width == -8) {
        Py_ssize_t size = -width;
        if (*start + size > end)
            return fail("an argument runs past the end of the stream", i);
        uint64_t length = 0;
        for (Py_ssize_t k = size - 1; k >= 0; k--)
            length = (length << 8) | raw[*start + k];
        *start += size;
        if (length > (uint64_t)(end - *start))
            return fail("an argument runs past the end of the stream", i);
        *after = *start + (Py_ssize_t)length;
    }
    else {
        const unsigned char *line = memchr(raw + *start, '\n', (size_t)(end - *start));
        if (line != NULL && width == -3)
            line = memchr(line + 1, '\n', (size_t)(end - (line + 1 - raw)));
        if (line == NULL)
            return fail("an argument runs past the end of the stream", i);
        *after = line + 1 - raw;
    }
    if (*after > end)
        return fail("an argument runs past the end of the stream", i);
    return 0;
}

/* The memo index of a PUT or GET: 0, or -1 (error set). */
static int
index_of(Replay *self, const unsigned char *raw, unsigned char code, Py_ssize_t start, Py_ssize_t after,
         Py_ssize_t *index)
{
    if (self->widths[code] >= 0) {
        uint64_t value = 0;
        for (Py_ssize_t k = after - 1; k >= start; k--)
            value = (value << 8) | raw[k];
        *index = (Py_ssize_t)value;
        return 0;
    }
    Py_ssize_t digits = after - 1 - start;
    if (digits < 1 || digits > MAX_DIGITS)
        return fail("a memo index that is not a decimal number", start - 1);
    Py_ssize_t value = 0;
    for (Py_ssize_t k = start; k < after - 1; k++) {
        if (raw[k] < '0' || raw[k] > '9')
            return fail("a memo index that is not a decimal number", start - 1);
        value = value * 10 + (raw[k] - '0');
    }
    *index = value;
    return 0;
}

static int
put(Replay *self, Py_ssize_t index, Array *stack, Array *marks, Py_ssize_t position)
{
    if (stack->size <= floor_of(marks))
        return fail("stack underflow", position);
    if (index > self->memo.size + self->fed)
        return fail("a memo index beyond anything this stream could have stored", position);
    if (index < self->target_span && self->targets[index]) {
        Py_ssize_t marked = node(self, 1);
        if (marked < 0)
            return -1;
        stack->items[stack->size - 1] = marked;
    }
    if (index >= self->memo.size) {
        if (reserve((void **)&self->memo.items, &self->memo.capacity, index + 1, sizeof(Py_ssize_t)) < 0)
            return -1;
        for (Py_ssize_t k = self->memo.size; k <= index; k++)
            self->memo.items[k] = -1;
        self->memo.size = index + 1;
    }
    self->memo.items[index] = stack->items[stack->size - 1];
    return 0;
}

/* One opcode's effect on the stack: 0, 1 at STOP (`*result` set), or -1 (error set). */
static int
apply(Replay *self, const unsigned char *raw, Py_ssize_t i, Py_ssize_t start, Py_ssize_t after, Array *stack,
      Array *marks, int *result)
{
    unsigned char code = raw[i];
    int effect = self->effects[code];
    Py_ssize_t index, cut, made;
    switch (effect) {
    case ATOM:
        return append(stack, 0);
    case GET:
        if (index_of(self, raw, code, start, after, &index) < 0)
            return -1;
        if (index < 0 || index >= self->memo.size || self->memo.items[index] < 0)
            return fail("a memo index that was never stored", i);
        return append(stack, self->memo.items[index]);
    case PUT:
        if (start == after)
            index = self->memo.size;
        else if (index_of(self, raw, code, start, after, &index) < 0)
            return -1;
        return put(self, index, stack, marks, i);
    case EMPTY: case LEAD:
        made = node(self, effect == LEAD);
        return made < 0 ? -1 : append(stack, made);
    case FROM_MARK: case FROM_TOP_1: case FROM_TOP_2: case FROM_TOP_3:
        if (effect == FROM_MARK) {
            if (!marks->size)
                return fail("stack underflow", i);
            cut = marks->items[--marks->size];
        }
        else
            cut = stack->size - (effect - FROM_MARK);
        if (cut < floor_of(marks))
            return fail("stack underflow", i);
        made = node(self, (uint8_t)any_lead(self, stack, cut));
        if (made < 0)
            return -1;
        stack->size = cut;
        return append(stack, made);
    case INTO_TOP_1: case INTO_TOP_2: case INTO_TOP_MARK:
        if (effect == INTO_TOP_MARK) {
            if (!marks->size)
                return fail("stack underflow", i);
            cut = marks->items[--marks->size];
        }
        else
            cut = stack->size - (effect - INTO_TOP_1 + 1);
        if (cut < floor_of(marks) + 1)
            return fail("stack underflow", i);
        if (any_lead(self, stack, cut))
            self->bits[stack->items[cut - 1]] = 1;
        stack->size = cut;
        return 0;
    case MARK:
        return append(marks, stack->size);
    case POP:
        if (stack->size > floor_of(marks))
            stack->size--;
        else if (marks->size)
            marks->size--;
        else
            return fail("stack underflow", i);
        return 0;
    case POP_MARK:
        if (!marks->size)
            return fail("stack underflow", i);
        stack->size = marks->items[--marks->size];
        return 0;
    case DUP:
        if (stack->size <= floor_of(marks))
            return fail("stack underflow", i);
        return append(stack, stack->items[stack->size - 1]);
    case STOP:
        if (stack->size != 1 || marks->size) {
            PyErr_Format(ReplayError, "STOP with %zd values and %zd marks, at position %zd", stack->size,
                         marks->size, i);
            return -1;
        }
        *result = self->bits[stack->items[--stack->size]];
        return 1;
    case SKIP:
        return 0;
    default:
        PyErr_Format(ReplayError, "opcode %#04x at position %zd is not one a pickler writes", code, i);
        return -1;
    }
}

static PyObject *
Replay_feed(Replay *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *raw = view.buf;
    Py_ssize_t end = view.len, i = 0, start, after;
    Array stack = {NULL, 0, 0}, marks = {NULL, 0, 0};
    int result = -1, failed = 0;
    self->fed += end;
    while (i < end && !failed) {
        if (argument(self, raw, end, i, &start, &after) < 0) {
            failed = 1;
            break;
        }
        int done = 0;
        int status = apply(self, raw, i, start, after, &stack, &marks, &done);
        if (status < 0)
            failed = 1;
        else if (status == 1)
            result = done;
        i = after;
    }
    if (!failed && (result < 0 || stack.size || marks.size)) {
        PyErr_SetString(ReplayError, "the stream does not end with a complete pickle");
        failed = 1;
    }
    PyMem_Free(stack.items);
    PyMem_Free(marks.items);
    PyBuffer_Release(&view);
    if (failed)
        return NULL;
    return PyBool_FromLong(result);
}

static PyObject *
Replay_leads(Replay *self, PyObject *arg)
{
    Py_ssize_t index = PyLong_AsSsize_t(arg);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    int lead = index >= 0 && index < self->memo.size && self->memo.items[index] >= 0
               && self->bits[self->memo.items[index]];
    return PyBool_FromLong(lead);
}

static PyObject *
Replay_memo_size(Replay *self, void *closure)
{
    return PyLong_FromSsize_t(self->memo.size);
}

static int
Replay_init(Replay *self, PyObject *args, PyObject *kwds)
{
    PyObject *targets;
    Py_buffer table;
    if (!PyArg_ParseTuple(args, "Oy*", &targets, &table))
        return -1;
    if (table.len != 512) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "the opcode table must have 512 bytes");
        return -1;
    }
    memcpy(self->widths, table.buf, 256);
    memcpy(self->effects, (const char *)table.buf + 256, 256);
    PyBuffer_Release(&table);
    PyObject *indexes = PySequence_List(targets);
    if (indexes == NULL)
        return -1;
    Py_ssize_t span = 0;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(indexes); k++) {
        Py_ssize_t index = PyLong_AsSsize_t(PyList_GET_ITEM(indexes, k));
        if (index < 0) {
            Py_DECREF(indexes);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a target memo index must be >= 0");
            return -1;
        }
        span = index + 1 > span ? index + 1 : span;
    }
    PyMem_Free(self->targets);
    self->targets = PyMem_Calloc((size_t)span + 1, 1);
    if (self->targets == NULL) {
        Py_DECREF(indexes);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(indexes); k++)
        self->targets[PyLong_AsSsize_t(PyList_GET_ITEM(indexes, k))] = 1;
    Py_DECREF(indexes);
    self->target_span = span;
    self->nbits = 0;
    self->memo.size = 0;
    self->fed = 0;
    return node(self, 0) < 0 ? -1 : 0; /* node 0: atoms */
}

static void
Replay_dealloc(Replay *self)
{
    PyMem_Free(self->targets);
    PyMem_Free(self->bits);
    PyMem_Free(self->memo.items);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Replay_methods[] = {
    {"feed", (PyCFunction)Replay_feed, METH_O, "Replay complete pickles; whether the last one's value leads to a target."},
    {"leads", (PyCFunction)Replay_leads, METH_O, "Whether memo entry `index` is, holds or leads to a target."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Replay_getset[] = {
    {"memo_size", (getter)Replay_memo_size, NULL, "Memo entries stored so far.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ReplayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ckpt.scanning._replay.Replay",
    .tp_basicsize = sizeof(Replay),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "src/ckpt/scanning/replay.py's Replay at C speed.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Replay_init,
    .tp_dealloc = (destructor)Replay_dealloc,
    .tp_methods = Replay_methods,
    .tp_getset = Replay_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_replay", "scanning/replay.py's replay at C speed.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__replay(void)
{
    if (PyType_Ready(&ReplayType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    PyObject *reach = PyImport_ImportModule("ckpt.scanning.replay");
    if (reach == NULL)
        goto error;
    ReplayError = PyObject_GetAttrString(reach, "ReplayError");
    Py_DECREF(reach);
    if (ReplayError == NULL)
        goto error;
    Py_INCREF(&ReplayType);
    if (PyModule_AddObject(m, "Replay", (PyObject *)&ReplayType) < 0) {
        Py_DECREF(&ReplayType);
        goto error;
    }
    return m;
error:
    Py_DECREF(m);
    return NULL;
}
