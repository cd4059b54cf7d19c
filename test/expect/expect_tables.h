/* expect_tables.h - the shared black and additional cube tables and one
 * equipment parser, set up and torn down as a cmocka group (the document
 * tests all need the same). Header-only: each test is one translation unit. */
#ifndef EXPECT_TABLES_H
#define EXPECT_TABLES_H

#include <stdio.h>
#include <stdlib.h>

#include "mx_cube.h"
#include "mx_equip.h"

static struct mx_cube_table *table;
static struct mx_equip_parser *parser;

/* cmocka group setup: both tables from $MX_SHARED_DIR/data, and the parser */
static int tables_setup(void **state)
{
    (void)state;
    char path[1024];
    const char *dir = getenv("MX_SHARED_DIR");
    if (!dir)
        return -1;
    snprintf(path, sizeof path, "%s/data/cube_probability_black.csv", dir);
    if (mx_cube_table_load(path, &table, NULL))
        return -1;
    snprintf(path, sizeof path, "%s/data/cube_probability_additional.csv", dir);
    if (mx_cube_table_add(table, path, NULL))
        return -1;
    return mx_equip_parser_new(&parser);
}

static int tables_teardown(void **state)
{
    (void)state;
    mx_cube_table_free(table);
    mx_equip_parser_free(parser);
    return 0;
}

#endif
