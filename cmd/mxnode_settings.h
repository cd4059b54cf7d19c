/* mxnode_settings.h - the node's settings table (see mx_config.h). */
#ifndef MXNODE_SETTINGS_H
#define MXNODE_SETTINGS_H

#include <stddef.h>

#include "mx_config.h"

extern const struct mx_setting mx_node_settings[];
extern const size_t mx_node_settings_count;

#endif
