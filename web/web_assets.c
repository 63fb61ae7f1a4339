/* Lookup of the embedded dashboard assets by URL path. */
#include "web_assets.h"

#include <string.h>

const pw_web_asset *web__asset_find(const char *path)
{
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    for (size_t i = 0; pw_web__assets[i]; i++)
        if (strcmp(pw_web__assets[i]->path, path) == 0)
            return pw_web__assets[i];
    return NULL;
}
