/* Compiles retls.h alone: it must include what it uses. */
#include "retls.h"

int retls_headertest_dummy(void) { return RETLS_OK; }
