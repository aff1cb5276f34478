/* The frequent opcodes of `stream.analyse`, at C speed.
 *
 * `run(raw, i, count, stack, marks, memo, uses, tags)` reads opcodes from
 * position `i` for as long as each is one of the common, simple ones
 * (data, strings, memo, MARK, SETITEMS/APPENDS of plain items, BUILD on a
 * new instance, NEWOBJ of a named class with no arguments, ...), applying
 * exactly what the Python loop in stream.py applies to the same Python
 * objects (the stack, marks, memo and uses). At the first opcode it does not
 * handle, or anything unusual (a missing memo entry, an empty stack, a bad
 * string), it stops without consuming it and returns (i, count): the Python
 * loop takes that opcode, with its own checks and messages. Being only a
 * fast path over the same state, it cannot judge differently.
 *
 * `tags` is (None marker, empty-tuple marker, New type, Global type).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyTypeObject *new_type, *global_type, *result_type, *tuple_type;
static PyObject *none_tag;

/* What state.value() leaves alone: plain data, strings, None, new instances, call results. */
static int
is_plain(PyObject *item)
{
    return item == Py_None || PyUnicode_CheckExact(item) || item == none_tag || Py_TYPE(item) == new_type
        || Py_TYPE(item) == result_type;
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

static int
all_plain(PyObject *stack, Py_ssize_t from, Py_ssize_t to)
{
    for (Py_ssize_t k = from; k < to; k++)
        if (!is_plain(PyList_GET_ITEM(stack, k)))
            return 0;
    return 1;
}

/* _Tuple(items) of the stack entries [from, to), replacing them. */
static int
make_tuple(PyObject *stack, Py_ssize_t from, Py_ssize_t to)
{
    PyObject *items = PyList_GetSlice(stack, from, to);
    PyObject *as_tuple = items ? PyList_AsTuple(items) : NULL;
    PyObject *tag = as_tuple ? PyObject_CallOneArg((PyObject *)tuple_type, as_tuple) : NULL;
    Py_XDECREF(items);
    Py_XDECREF(as_tuple);
    if (tag == NULL || PyList_SetSlice(stack, from, to, NULL) < 0 || PyList_Append(stack, tag) < 0) {
        Py_XDECREF(tag);
        return -1;
    }
    Py_DECREF(tag);
    return 0;
}

/* NEWOBJ / REDUCE of a named global: or `bit` into uses[glob.name] and
 * replace the top two stack entries with glob.<tag> (its instance or result
 * tag). 1 applied, 0 not applicable (the Python loop takes the opcode), -1 error. */
static int
use_global(PyObject *glob, const char *tag_name, long bit, PyObject *uses, PyObject *stack, Py_ssize_t n)
{
    PyObject *name = PyObject_GetAttrString(glob, "name");
    PyObject *tag = name ? PyObject_GetAttrString(glob, tag_name) : NULL;
    PyObject *bits = tag ? PyDict_GetItemWithError(uses, name) : NULL;
    if (bits == NULL) {
        Py_XDECREF(name);
        Py_XDECREF(tag);
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *merged = PyLong_FromLong(PyLong_AsLong(bits) | bit);
    int failed = merged == NULL || PyDict_SetItem(uses, name, merged) < 0
        || PyList_SetSlice(stack, n - 2, n, NULL) < 0 || PyList_Append(stack, tag) < 0;
    Py_XDECREF(merged);
    Py_DECREF(name);
    Py_DECREF(tag);
    return failed ? -1 : 1;
}

static PyObject *
run(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t i, count;
    PyObject *stack, *marks, *memo, *uses, *tags;
    if (!PyArg_ParseTuple(args, "y*nnO!O!O!O!O!", &view, &i, &count, &PyList_Type, &stack, &PyList_Type, &marks,
                          &PyDict_Type, &memo, &PyDict_Type, &uses, &PyTuple_Type, &tags))
        return NULL;
    if (PyTuple_GET_SIZE(tags) != 7) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "tags must be (none, empty, New, Global, Result, Tuple, special names)");
        return NULL;
    }
    none_tag = PyTuple_GET_ITEM(tags, 0);
    PyObject *empty = PyTuple_GET_ITEM(tags, 1);
    new_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 2);
    global_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 3);
    result_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 4);
    tuple_type = (PyTypeObject *)PyTuple_GET_ITEM(tags, 5);
    PyObject *specials = PyTuple_GET_ITEM(tags, 6);
    const unsigned char *raw = (const unsigned char *)view.buf;
    Py_ssize_t end = view.len;
    PyObject *error = NULL;

#define STOP_HERE goto done
#define PUSH(obj) do { if (PyList_Append(stack, (obj)) < 0) { error = Py_None; goto done; } } while (0)

    while (i < end) {
        unsigned char code = raw[i];
        Py_ssize_t start = i + 1, n = PyList_GET_SIZE(stack), width;
        /* where the next opcode starts: checked before anything is applied */
        switch (code) {
        case 'h': case 'q': case 'K': width = 1; break;
        case 'M': width = 2; break;
        case 'j': case 'r': case 'J': width = 4; break;
        case 'G': case 0x95: width = 8; break;
        case 'C': case 0x8c:
            if (start >= end) STOP_HERE;
            width = 1 + raw[start];
            break;
        case 'X':
            if (start + 4 > end) STOP_HERE;
            width = 4 + (Py_ssize_t)(raw[start] | (raw[start + 1] << 8) | (raw[start + 2] << 16)
                                     | ((unsigned long)raw[start + 3] << 24));
            break;
        case 0x94: case '}': case ']': case 0x88: case 0x89: case 'N': case ')': case '(': case 'u': case 'e':
        case 'b': case 0x81: case 0x85: case 0x86: case 0x87: case 't': case 'R': case '0': case '2': case 'a':
        case 's': case 'l': case 'd': case 0x91:
            width = 0;
            break;
        default:
            STOP_HERE;
        }
        if (start + width > end) STOP_HERE;
        switch (code) {
        case 'h': case 'j': { /* BINGET, LONG_BINGET */
            unsigned long index = code == 'h' ? raw[start]
                : (raw[start] | (raw[start + 1] << 8) | (raw[start + 2] << 16) | ((unsigned long)raw[start + 3] << 24));
            PyObject *key = PyLong_FromUnsignedLong(index);
            if (key == NULL) { error = Py_None; goto done; }
            PyObject *found = PyDict_GetItemWithError(memo, key);
            Py_DECREF(key);
            if (found == NULL) { if (PyErr_Occurred()) error = Py_None; STOP_HERE; }
            PUSH(found);
            break;
        }
        case 0x94: case 'q': case 'r': { /* MEMOIZE, BINPUT, LONG_BINPUT */
            if (n == 0) STOP_HERE;
            PyObject *key;
            if (code == 0x94) {
                key = PyLong_FromSsize_t(PyDict_GET_SIZE(memo));
            } else {
                Py_ssize_t m = PyList_GET_SIZE(marks), floor = 0;
                if (m) floor = PyLong_AsSsize_t(PyList_GET_ITEM(marks, m - 1));
                if (n <= floor) STOP_HERE; /* state.top() refuses an entry below the last MARK */
                unsigned long index = code == 'q' ? raw[start]
                    : (raw[start] | (raw[start + 1] << 8) | (raw[start + 2] << 16) | ((unsigned long)raw[start + 3] << 24));
                if (index > (unsigned long)(count + 1)) STOP_HERE; /* the Python loop refuses it */
                key = PyLong_FromUnsignedLong(index);
            }
            if (key == NULL || PyDict_SetItem(memo, key, PyList_GET_ITEM(stack, n - 1)) < 0) {
                Py_XDECREF(key); error = Py_None; goto done;
            }
            Py_DECREF(key);
            break;
        }
        case '}': case ']': case 0x88: case 0x89: case 'K': case 'M': case 'J': case 'G': case 'C':
            PUSH(Py_None);
            break;
        case 'N': PUSH(none_tag); break;
        case ')': PUSH(empty); break;
        case 0x95: break; /* FRAME */
        case '(': { /* MARK */
            PyObject *mark = PyLong_FromSsize_t(n);
            if (mark == NULL || PyList_Append(marks, mark) < 0) { Py_XDECREF(mark); error = Py_None; goto done; }
            Py_DECREF(mark);
            break;
        }
        case 0x8c: case 'X': { /* SHORT_BINUNICODE, BINUNICODE */
            Py_ssize_t skip = code == 0x8c ? 1 : 4;
            PyObject *text = PyUnicode_DecodeUTF8((const char *)raw + start + skip, width - skip, "surrogatepass");
            if (text == NULL) { PyErr_Clear(); STOP_HERE; }
            int failed = PyList_Append(stack, text);
            Py_DECREF(text);
            if (failed) { error = Py_None; goto done; }
            break;
        }
        case 'u': case 'e': { /* SETITEMS, APPENDS */
            Py_ssize_t m = PyList_GET_SIZE(marks);
            if (m == 0) STOP_HERE;
            Py_ssize_t cut = PyLong_AsSsize_t(PyList_GET_ITEM(marks, m - 1));
            if (cut < 1 || cut > n) { PyErr_Clear(); STOP_HERE; }
            if (!all_plain(stack, cut, n)) STOP_HERE;
            if (!quiet_target(PyList_GET_ITEM(stack, cut - 1))) STOP_HERE;
            if (PyList_SetSlice(stack, cut, n, NULL) < 0 || PyList_SetSlice(marks, m - 1, m, NULL) < 0) {
                error = Py_None; goto done;
            }
            break;
        }
        case 'b': { /* BUILD */
            if (n < 2) STOP_HERE;
            PyObject *given = PyList_GET_ITEM(stack, n - 1), *target = PyList_GET_ITEM(stack, n - 2);
            if (!is_plain(given) || !quiet_target(target)) STOP_HERE;
            if (PyList_SetSlice(stack, n - 1, n, NULL) < 0) { error = Py_None; goto done; }
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1, TUPLE2, TUPLE3: state.pop() keeps above the last MARK */
            Py_ssize_t size = code - 0x84;
            if (n - size < floor_of(marks)) STOP_HERE;
            for (Py_ssize_t k = n - size; k < n; k++)
                if (Py_TYPE(PyList_GET_ITEM(stack, k)) == tuple_type) STOP_HERE; /* _tuple() flattens those */
            if (make_tuple(stack, n - size, n) < 0) { error = Py_None; goto done; }
            break;
        }
        case 't': { /* TUPLE */
            Py_ssize_t m = PyList_GET_SIZE(marks);
            if (m == 0) STOP_HERE;
            Py_ssize_t cut = PyLong_AsSsize_t(PyList_GET_ITEM(marks, m - 1));
            if (cut < 0 || cut > n) { PyErr_Clear(); STOP_HERE; }
            for (Py_ssize_t k = cut; k < n; k++)
                if (Py_TYPE(PyList_GET_ITEM(stack, k)) == tuple_type) STOP_HERE;
            if (PyList_SetSlice(marks, m - 1, m, NULL) < 0 || make_tuple(stack, cut, n) < 0) {
                error = Py_None; goto done;
            }
            break;
        }
        case 'l': case 'd': case 0x91: { /* LIST, DICT, FROZENSET of plain items */
            Py_ssize_t m = PyList_GET_SIZE(marks);
            if (m == 0) STOP_HERE;
            Py_ssize_t cut = PyLong_AsSsize_t(PyList_GET_ITEM(marks, m - 1));
            if (cut < 0 || cut > n) { PyErr_Clear(); STOP_HERE; }
            if (!all_plain(stack, cut, n)) STOP_HERE;
            if (PyList_SetSlice(marks, m - 1, m, NULL) < 0 || PyList_SetSlice(stack, cut, n, NULL) < 0
                || PyList_Append(stack, Py_None) < 0) {
                error = Py_None; goto done;
            }
            break;
        }
        case 'R': { /* REDUCE of a named global (not getattr, type or partial) on plain arguments */
            if (n - 2 < floor_of(marks)) STOP_HERE;
            PyObject *arguments = PyList_GET_ITEM(stack, n - 1), *func = PyList_GET_ITEM(stack, n - 2);
            if (Py_TYPE(func) != global_type || Py_TYPE(arguments) != tuple_type) STOP_HERE;
            PyObject *items = PyObject_GetAttrString(arguments, "items");
            if (items == NULL) { error = Py_None; goto done; }
            int plain = PyTuple_Check(items);
            for (Py_ssize_t k = 0; plain && k < PyTuple_GET_SIZE(items); k++)
                plain = is_plain(PyTuple_GET_ITEM(items, k));
            Py_DECREF(items);
            if (!plain) STOP_HERE;
            PyObject *name = PyObject_GetAttrString(func, "name");
            if (name == NULL) { error = Py_None; goto done; }
            int special = PySequence_Contains(specials, name);
            Py_DECREF(name);
            if (special < 0) { error = Py_None; goto done; }
            if (special) STOP_HERE;
            int applied = use_global(func, "result", 2 /* stream.CALL */, uses, stack, n);
            if (applied < 0) { error = Py_None; goto done; }
            if (applied == 0) STOP_HERE;
            break;
        }
        case '0': { /* POP */
            Py_ssize_t m = PyList_GET_SIZE(marks);
            if (m && PyLong_AsSsize_t(PyList_GET_ITEM(marks, m - 1)) == n) {
                if (PyList_SetSlice(marks, m - 1, m, NULL) < 0) { error = Py_None; goto done; }
                break;
            }
            if (n <= floor_of(marks) || !is_plain(PyList_GET_ITEM(stack, n - 1))) STOP_HERE;
            if (PyList_SetSlice(stack, n - 1, n, NULL) < 0) { error = Py_None; goto done; }
            break;
        }
        case '2': /* DUP */
            if (n <= floor_of(marks)) STOP_HERE;
            PUSH(PyList_GET_ITEM(stack, n - 1));
            break;
        case 'a': case 's': { /* APPEND, SETITEM of plain items into plain data or a new instance */
            Py_ssize_t size = code == 'a' ? 1 : 2;
            if (n - size - 1 < floor_of(marks)) STOP_HERE;
            if (!all_plain(stack, n - size, n) || !quiet_target(PyList_GET_ITEM(stack, n - size - 1))) STOP_HERE;
            if (PyList_SetSlice(stack, n - size, n, NULL) < 0) { error = Py_None; goto done; }
            break;
        }
        case 0x81: { /* NEWOBJ of a named class, no arguments */
            if (n < 2) STOP_HERE;
            PyObject *arguments = PyList_GET_ITEM(stack, n - 1), *cls = PyList_GET_ITEM(stack, n - 2);
            if (arguments != empty || Py_TYPE(cls) != global_type) STOP_HERE;
            int applied = use_global(cls, "instance", 4 /* stream.NEW */, uses, stack, n);
            if (applied < 0) { error = Py_None; goto done; }
            if (applied == 0) STOP_HERE;
            break;
        }
        }
        i = start + width;
        count++;
    }
done:
    PyBuffer_Release(&view);
    if (error != NULL)
        return NULL;
    return Py_BuildValue("nn", i, count);
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, "Apply the frequent opcodes from position i on; return (i, opcodes)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_stream", "The frequent opcodes of stream.analyse.", -1, methods};

PyMODINIT_FUNC
PyInit__stream(void)
{
    return PyModule_Create(&module);
}
