/* References: first and last frames, reference images (each named after its character) and music,
   read into data URLs with a preview and a remove button. */

import { $, showBanner, state } from "./core.js";

const MAX_IMAGES = 9; // the server's limit on images per task (first + last + references)

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function imageCount() {
  return ["first_frame", "last_frame", "reference_image"].reduce((n, role) => n + state.refs[role].length, 0);
}

export async function addFiles(role, files) {
  for (const file of files) {
    if (role === "music") {
      if (!file.type.startsWith("audio/")) {
        showBanner(`"${file.name}" is not an audio file; music must be MP3, WAV, OGG, FLAC or M4A.`);
        continue;
      }
      state.refs.music = [{ name: file.name, url: await readAsDataUrl(file), file }];
      continue;
    }
    if (!file.type.startsWith("image/")) {
      showBanner(`"${file.name}" is not an image; references must be PNG, JPEG or WebP files.`);
      continue;
    }
    const single = role !== "reference_image";
    if (!single && imageCount() >= MAX_IMAGES) {
      showBanner(`At most ${MAX_IMAGES} images per task (first frame, last frame and references together).`);
      break;
    }
    const url = await readAsDataUrl(file);
    if (single) state.refs[role] = [{ name: file.name, url, file }];
    else state.refs[role].push({ name: file.name, url, file, label: "" });
  }
  renderRefs();
}

export function renderRefs() {
  for (const [role, list] of Object.entries(state.refs)) {
    const box = $(`thumbs-${role}`);
    box.replaceChildren();
    list.forEach((ref, i) => {
      const div = document.createElement("div");
      div.className = "thumb";
      div.dataset.role = role;
      const name = document.createElement("span");
      name.className = "thumb-name";
      name.textContent = ref.name;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "✕";
      remove.title = `Remove ${ref.name}`;
      remove.addEventListener("click", () => {
        state.refs[role].splice(i, 1);
        renderRefs();
      });
      if (role === "music") {
        div.classList.add("audio");
        div.title = ref.name;
        div.append(name, remove);
      } else {
        const img = document.createElement("img");
        img.src = ref.url;
        img.alt = `${role.replace("_", " ")}: ${ref.name}`;
        if (role === "reference_image") {
          // Each reference is a character's: the name ties it to the shots where they speak or are mentioned.
          div.classList.add("named");
          const frame = document.createElement("div");
          frame.className = "frame";
          frame.append(img, name, remove);
          const label = document.createElement("input");
          label.type = "text";
          label.className = "ref-name";
          label.placeholder = "character name";
          label.value = ref.label || "";
          label.setAttribute("aria-label", `Character shown in ${ref.name}`);
          label.addEventListener("input", () => (ref.label = label.value));
          const mention = document.createElement("span");
          mention.className = "ref-mention";
          mention.textContent = `@image${i + 1}`;
          mention.title = `Write @image${i + 1} (or @图片${i + 1}) in a shot to put this image in it`;
          div.append(frame, label, mention);
        } else {
          div.append(img, name, remove);
        }
      }
      box.append(div);
    });
  }
}
